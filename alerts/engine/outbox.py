"""Steps 3 and 4, the delivery hand-off: expired leases back to pending, pending rows to the broker."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction

from .. import delivery, enqueue
from ..models import AlertEvent, Notification
from .common import BATCH, _timeline


def release_expired_leases(now: datetime) -> int:
    """Notifications whose sender died mid-delivery (lease expired, not sent) become pending again;
    one that has killed its sender ``NOTIFICATION_MAX_ATTEMPTS`` times fails instead of looping."""
    expired = Notification.objects.filter(status=Notification.Status.SENDING, lease_until__lt=now)
    exhausted = list(
        expired.filter(attempts__gte=settings.NOTIFICATION_MAX_ATTEMPTS).values_list("pk", "alert_id", "channel")
    )
    if exhausted:
        error = "the sender stopped mid-delivery on every attempt"
        Notification.objects.filter(pk__in=[pk for pk, _, _ in exhausted], status=Notification.Status.SENDING).update(
            status=Notification.Status.FAILED, lease_until=None, last_error=error
        )
        AlertEvent.objects.bulk_create(
            [
                _timeline(alert_id, AlertEvent.Kind.FAILED, now, f"{channel}: {error}")
                for _, alert_id, channel in exhausted
            ]
        )
    return expired.update(status=Notification.Status.PENDING, enqueued_at=None, next_attempt_at=None) + len(exhausted)


def enqueue_pending(now: datetime, limit: int = BATCH) -> int:
    """Hand pending notifications to the broker after commit: new ones, and ones whose enqueue was
    lost (a broker outage) or never consumed within ``NOTIFICATION_REQUEUE_SECONDS``."""
    # A later step of a personal rule ("SMS after 5 minutes") due before the next scan is handed
    # over now with a countdown, so it leaves on its minute rather than at the following scan.
    soon = now + timedelta(seconds=min(settings.ALERT_SCAN_SECONDS, settings.CELERY_MAX_COUNTDOWN_SECONDS))
    # Most urgent first: after a burst of alerts, emergencies leave before reminders.
    mine, countdowns = delivery.take_for_broker(
        Notification.objects.all(), now, soon, order_by=("-alert__severity", "created_at"), limit=limit
    )
    if mine:
        transaction.on_commit(lambda: publish_deliveries(mine, countdowns))
    return len(mine)


def publish_deliveries(ids: list[int], countdowns: dict[int, int] | None = None) -> int:
    """Enqueue delivery tasks; on a broker failure the rest go back to the outbox for the next scan."""
    return delivery.publish_rows(Notification.objects.all(), ids, countdowns, enqueue.delivery, what="deliveries")
