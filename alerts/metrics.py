"""What ``/metrics`` exports, read from stored rows at scrape time.

Every figure comes from the database (the scan's heartbeat, alerts, notifications) and the broker,
so any web process answers the same — no per-process counters to aggregate under gunicorn — and
the worker and beat need no metrics server of their own. Labels carry clinic ids, never names;
nothing about patients. A constant number of queries per scrape, whatever the clinic's size.
"""

from __future__ import annotations

import statistics
from datetime import timedelta

from django.db.models import Count
from django.utils import timezone
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from .engine import SCAN
from .models import Alert, Heartbeat, Notification, Severity

LATENCY_WINDOW = timedelta(hours=1)
LATENCY_SAMPLE_LIMIT = 10_000
WAITING = (Notification.Status.PENDING, Notification.Status.SENDING)


def last_scan_age_seconds(now=None) -> float | None:
    """Seconds since the last completed scan; None when none has run."""
    last = Heartbeat.objects.filter(name=SCAN).values_list("last_success_at", flat=True).first()
    if last is None:
        return None
    return round(((now or timezone.now()) - last).total_seconds(), 1)


def broker_status() -> dict:
    """Whether the Celery broker answers, and how many tasks wait in the default queue."""
    from itb_tracker.celery import app

    queue = app.conf.task_default_queue
    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1)
            # A (non-passive) declare answers the queue's length on every kombu transport; Redis
            # drops empty lists, so a passive declare would call an idle queue missing.
            _name, depth, _consumers = connection.default_channel.queue_declare(queue=queue)
    except Exception as exc:  # down, refused, timed out: reported, never raised (see /readyz)
        return {"reachable": False, "queue": queue, "error": exc.__class__.__name__}
    return {"reachable": True, "queue": queue, "queue_depth": depth}


def _severity_label(value: int) -> str:
    return Severity(value).name.lower()


class AlertingCollector:
    """A prometheus-client collector; register it on a fresh registry per scrape."""

    def collect(self):
        now = timezone.now()
        heartbeat = Heartbeat.objects.filter(name=SCAN).first()
        last_scan = GaugeMetricFamily(
            "itb_scan_last_success_timestamp_seconds", "Unix time of the last completed escalation scan."
        )
        duration = GaugeMetricFamily("itb_scan_duration_seconds", "How long the last completed escalation scan took.")
        if heartbeat is not None and heartbeat.last_success_at is not None:
            last_scan.add_metric([], heartbeat.last_success_at.timestamp())
            if "duration_seconds" in heartbeat.last_summary:
                duration.add_metric([], float(heartbeat.last_summary["duration_seconds"]))
        yield last_scan
        yield duration

        open_alerts = GaugeMetricFamily(
            "itb_alerts_open", "Open alerts by clinic id and severity.", labels=["clinic", "severity"]
        )
        rows = (
            Alert.objects.filter(status__in=Alert.OPEN_STATUSES).values("clinic_id", "severity").annotate(n=Count("id"))
        )
        for row in rows.order_by("clinic_id", "severity"):
            open_alerts.add_metric([str(row["clinic_id"]), _severity_label(row["severity"])], row["n"])
        yield open_alerts

        pending = GaugeMetricFamily(
            "itb_notifications_pending",
            "Notifications not yet delivered (pending or sending), by channel.",
            labels=["channel"],
        )
        finished = CounterMetricFamily(
            "itb_notifications",
            "Notifications delivered or given up, by channel and outcome.",
            labels=["channel", "status"],
        )
        by_channel = (
            Notification.objects.values("channel", "status").annotate(n=Count("id")).order_by("channel", "status")
        )
        waiting: dict[str, int] = {}
        for row in by_channel:
            if row["status"] in WAITING:
                waiting[row["channel"]] = waiting.get(row["channel"], 0) + row["n"]
            else:
                finished.add_metric([row["channel"], row["status"]], row["n"])
        for channel, count in sorted(waiting.items()):
            pending.add_metric([channel], count)
        yield pending
        yield finished

        latency = GaugeMetricFamily(
            "itb_notification_delivery_latency_seconds",
            "Time from a notification's creation to its delivery, over those sent in the last hour, by channel.",
            labels=["channel", "quantile"],
        )
        sent = Notification.objects.filter(status=Notification.Status.SENT, sent_at__gte=now - LATENCY_WINDOW)
        rows = sent.order_by("-sent_at").values_list("channel", "created_at", "sent_at")[:LATENCY_SAMPLE_LIMIT]
        by_channel_latency: dict[str, list[float]] = {}
        for channel, created, sent_at in rows:
            by_channel_latency.setdefault(channel, []).append(max((sent_at - created).total_seconds(), 0.0))
        for channel, seconds in sorted(by_channel_latency.items()):
            seconds.sort()
            latency.add_metric([channel, "0.5"], statistics.median(seconds))
            latency.add_metric([channel, "0.9"], seconds[min(len(seconds) - 1, int(0.9 * len(seconds)))])
            latency.add_metric([channel, "1"], seconds[-1])
        yield latency

        broker = broker_status()
        reachable = GaugeMetricFamily("itb_broker_reachable", "1 when the Celery broker answered this scrape.")
        reachable.add_metric([], 1 if broker["reachable"] else 0)
        yield reachable
        depth = GaugeMetricFamily("itb_queue_depth", "Tasks waiting in the Celery queue.", labels=["queue"])
        if broker["reachable"]:
            depth.add_metric([broker["queue"]], broker["queue_depth"])
        yield depth
