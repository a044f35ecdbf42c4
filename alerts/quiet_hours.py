"""Quiet hours: reminder-severity emails and webhooks raised while the clinic is closed wait until it
opens (its opening hours on its open days: weekdays, public holidays, closures).

Only reminders wait. In-app notifications are never delayed; physician reviews, urgent, critical
and emergency alerts never wait; the escalation clock (the alert's ``next_step_at``) does not move.
A waiting notification is an ordinary pending one with ``next_attempt_at`` set: the outbox sweep
(``engine.enqueue_pending``) and the delivery claim already leave it alone until then.
"""

from __future__ import annotations

from datetime import datetime

from clinics.calendar import calendars_of

from .models import Channel, Notification, Severity

WAITING_CHANNELS = frozenset({Channel.EMAIL, Channel.WEBHOOK})


def hold_reminders(notifications: list[Notification], now: datetime) -> int:
    """Give the reminder emails and webhooks among ``notifications`` (unsaved, each with its alert
    and the alert's clinic loaded) the time their clinic next opens, when it is closed ``now``.
    One query (the clinics' closures), and only when there is a reminder to hold."""
    reminders = [n for n in notifications if n.channel in WAITING_CHANNELS and n.alert.severity == Severity.REMINDER]
    if not reminders:
        return 0
    calendars = calendars_of({n.alert.clinic_id: n.alert.clinic for n in reminders}.values())
    held = 0
    for notification in reminders:
        opens = calendars[notification.alert.clinic_id].next_opening(now)
        if opens > now:
            notification.next_attempt_at = opens
            held += 1
    return held


def release_waiting(alert_ids, now: datetime) -> int:
    """An alert upgraded while its reminder waits: the waiting notifications go at once. Waiting ones
    are pending, never attempted, with a time to go (a failed attempt's retry has attempts > 0)."""
    return Notification.objects.filter(
        alert_id__in=list(alert_ids),
        status=Notification.Status.PENDING,
        attempts=0,
        next_attempt_at__gt=now,
    ).update(next_attempt_at=None)
