"""Celery tasks: the scan (beat, every ALERT_SCAN_SECONDS) and one delivery per notification."""

import logging
import urllib.request

from celery import shared_task
from django.conf import settings

from . import delivery, engine

log = logging.getLogger(__name__)


@shared_task(name="alerts.scan", ignore_result=True)
def scan() -> dict:
    summary = engine.run_scan()
    ping_heartbeat_url()
    return summary


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
