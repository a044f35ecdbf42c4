"""Celery tasks: the scan (beat, every ALERT_SCAN_SECONDS), the rota gap check (beat, every
ROTA_GAP_CHECK_SECONDS) and one delivery per notification."""

import logging
import urllib.request

from celery import shared_task
from django.conf import settings

from . import delivery, engine, gaps

log = logging.getLogger(__name__)


@shared_task(name="alerts.scan", ignore_result=True)
def scan() -> dict:
    summary = engine.run_scan()
    ping_heartbeat_url()
    return summary


@shared_task(name="alerts.rota_gaps", ignore_result=True)
def rota_gaps() -> dict:
    """Hours in the next 14 days with nobody on call become clinic-level alerts to the admins
    (alerts/gaps.py); the scan then notifies them like any alert."""
    report = gaps.sync_rota_gaps()
    return {"raised": report.raised, "changed": report.upgraded, "resolved": report.resolved}


@shared_task(name="alerts.deliver", ignore_result=True, acks_late=True)
def deliver_notification(notification_id: int) -> str:
    return delivery.deliver(notification_id)


def ping_heartbeat_url() -> None:
    """Tell an outside monitor the scan ran (optional HEARTBEAT_URL): it pages someone if we stop."""
    url = settings.HEARTBEAT_URL
    if not url:
        return
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - an operator's setting
            response.read(64)
    except Exception as exc:  # a monitor outage must never stop alerting
        log.warning("heartbeat ping failed: %s", exc)
