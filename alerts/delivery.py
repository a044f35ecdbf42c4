"""Delivering one notification, at least once and never after it was marked sent."""

from __future__ import annotations

import logging
import math
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from . import contacts, enqueue
from .channels import Permanent, Transient, get_channel
from .models import AlertEvent, Channel, FailingAddress, Notification

log = logging.getLogger(__name__)


def backoff_seconds(attempts: int) -> int:
    """Exponential back-off: 30 s, 60 s, 120 s, … capped below the broker's visibility timeout."""
    return min(30 * 2 ** max(attempts - 1, 0), settings.CELERY_MAX_COUNTDOWN_SECONDS)


def claim(notification_id: int, now: datetime) -> bool:
    """Compare-and-set: only a pending notification whose retry time has come is taken, with a lease.
    A sent one is never pending again, so it is never sent twice by this path."""
    return claim_row(Notification.objects.all(), notification_id, now)


def claim_row(outbox, pk: int, now: datetime) -> bool:
    """The claim of any outbox row with Notification's delivery fields (``status`` with its values,
    ``next_attempt_at``, ``lease_until``, ``attempts``): the monthly report digest uses it too."""
    return bool(
        outbox.filter(pk=pk, status=Notification.Status.PENDING)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .update(
            status=Notification.Status.SENDING,
            lease_until=now + timedelta(seconds=settings.NOTIFICATION_LEASE_SECONDS),
            attempts=F("attempts") + 1,
        )
    )


def take_for_broker(outbox, now: datetime, soon: datetime, *, order_by, limit: int) -> tuple[list[int], dict[int, int]]:
    """Claim an outbox's pending rows for the broker: new ones, retries due before ``soon``, and
    ones whose enqueue was lost or never consumed within ``NOTIFICATION_REQUEUE_SECONDS``. Returns
    the ids taken and the countdowns of those due later. Used by the alerts' scan and the digest."""
    stale = now - timedelta(seconds=settings.NOTIFICATION_REQUEUE_SECONDS)
    waiting = (
        Q(status=Notification.Status.PENDING)
        & (Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=stale))
        & (Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=soon))
    )
    ids = list(outbox.filter(waiting).order_by(*order_by).values_list("pk", flat=True)[:limit])
    if not ids:
        return [], {}
    # Compare-and-set claim: rows still waiting get this run's token and enqueue time; a concurrent
    # run's UPDATE finds them no longer waiting and enqueues none of them.
    token = uuid.uuid4().hex
    outbox.filter(waiting, pk__in=ids).update(enqueued_at=now, claim=token)
    rows = list(outbox.filter(claim=token).values_list("pk", "next_attempt_at"))
    countdowns = {pk: math.ceil((due - now).total_seconds()) for pk, due in rows if due and due > now}
    return [pk for pk, _ in rows], countdowns


def publish_rows(outbox, ids: list[int], countdowns: dict[int, int] | None, send, what: str) -> int:
    """Publish ``send(pk, countdown=…)`` for each row; on a broker failure the rest go back to the
    outbox (``enqueued_at`` cleared) for the next run. Returns how many were published."""
    countdowns = countdowns or {}
    for position, pk in enumerate(ids):
        try:
            send(pk, countdown=countdowns.get(pk))
        except Exception as exc:  # the broker is down: kombu raises OperationalError and friends
            log.warning("broker unavailable, %d %s left for the next run: %s", len(ids) - position, what, exc)
            outbox.filter(pk__in=ids[position:], status=Notification.Status.PENDING).update(enqueued_at=None)
            return position
    return len(ids)


def deliver(notification_id: int, now: datetime | None = None) -> str:
    """Send one notification. Returns what happened: sent, skipped, cancelled, retry, failed."""
    now = now or timezone.now()
    if not claim(notification_id, now):
        return "skipped"
    notification = Notification.objects.select_related("alert", "contact_method", "recipient").get(pk=notification_id)
    alert = notification.alert
    reason = _no_longer_wanted(notification)
    if reason:
        Notification.objects.filter(pk=notification_id, status=Notification.Status.SENDING).update(
            status=Notification.Status.CANCELLED, lease_until=None, last_error=reason
        )
        return "cancelled"
    method = notification.contact_method
    try:
        get_channel(notification.channel).send(notification)
    except Transient as exc:
        if method and contacts.record_delivery_failure(method.pk, str(exc), permanent=False, now=now):
            return _fail(notification, f"{exc}; the method is suspended until its owner verifies it again", now)
        return retry_or_fail(
            Notification.objects.all(),
            notification,
            str(exc),
            now,
            send=enqueue.delivery,
            fail=lambda error: _fail(notification, error, now),
            what="notification",
        )
    except Permanent as exc:
        if method:
            contacts.record_delivery_failure(method.pk, str(exc), permanent=True, now=now)
        return _fail(notification, str(exc), now)
    if method:
        contacts.record_delivery_success(method.pk)
    done = now
    with transaction.atomic():
        Notification.objects.filter(pk=notification_id, status=Notification.Status.SENDING).update(
            status=Notification.Status.SENT, sent_at=done, lease_until=None, last_error=""
        )
        AlertEvent.objects.create(
            alert=alert,
            at=done,
            kind=AlertEvent.Kind.DELIVERED,
            detail=f"{notification.get_channel_display()} to {_who(notification)}",
        )
        address_works(alert.clinic_id, notification.channel, notification.address, done)
    return "sent"


def _no_longer_wanted(notification) -> str:
    """Why a claimed notification should not go out after all ("" when it should)."""
    alert = notification.alert
    if not alert.is_open:
        return "alert resolved"
    if notification.unless_acknowledged and alert.status != alert.Status.TRIGGERED:
        return "alert acknowledged before this step"
    method = notification.contact_method
    if notification.channel == Channel.PHONE and (method is None or not method.is_usable):
        return "contact method removed, suspended or unverified"
    return ""


def _who(notification) -> str:
    if notification.recipient_id:
        who = notification.recipient.get_full_name() or notification.recipient.get_username()
        if notification.contact_method_id:
            who = f"{who} ({notification.contact_method.label})"
        return who
    return "the clinic's webhook"


def retry_or_fail(outbox, row, error: str, now: datetime, *, send, fail, what: str) -> str:
    """After a transient failure of an outbox row being sent (``claim_row``'s fields): give up with
    ``fail(error)`` once it has had ``NOTIFICATION_MAX_ATTEMPTS`` attempts, else make it pending
    again after the back-off and publish ``send(pk, countdown=…)``; a broker outage leaves it to the
    next run's enqueue step at ``next_attempt_at``. Returns "retry" or what ``fail`` returns.
    Used by notifications and the monthly report digest."""
    if row.attempts >= settings.NOTIFICATION_MAX_ATTEMPTS:
        return fail(f"gave up after {row.attempts} attempts: {error}")
    delay = backoff_seconds(row.attempts)
    outbox.filter(pk=row.pk, status=Notification.Status.SENDING).update(
        status=Notification.Status.PENDING,
        next_attempt_at=now + timedelta(seconds=delay),
        enqueued_at=now,
        lease_until=None,
        last_error=error[:500],
    )
    log.info("%s %s: attempt %s failed, retry in %ss", what, row.pk, row.attempts, delay)
    try:
        send(row.pk, countdown=delay)
    except Exception:  # broker down: the next run's enqueue step takes it up at next_attempt_at
        outbox.filter(pk=row.pk, status=Notification.Status.PENDING).update(enqueued_at=None)
    return "retry"


def address_failed(clinic_id: int, channel: str, address: str, error: str, now: datetime) -> None:
    """An address failed for good: listed for the clinic's admins until a send to it works again.
    Notifications and the monthly report digest (an admin's email) both report here."""
    failing, created = FailingAddress.objects.get_or_create(
        clinic_id=clinic_id,
        channel=channel,
        address=address,
        defaults={"first_failed_at": now, "last_failed_at": now, "last_error": error[:500]},
    )
    if not created:
        failing.last_failed_at = now
        failing.last_error = error[:500]
        if failing.cleared_at is not None:
            failing.cleared_at = None
            failing.first_failed_at = now
        failing.save()


def address_works(clinic_id: int, channel: str, address: str, now: datetime) -> None:
    """A send to the address worked: it leaves the clinic's failing-addresses list."""
    FailingAddress.objects.filter(
        clinic_id=clinic_id, channel=channel, address=address, cleared_at__isnull=True
    ).update(cleared_at=now)


def _fail(notification, error: str, now: datetime) -> str:
    alert = notification.alert
    with transaction.atomic():
        Notification.objects.filter(pk=notification.pk, status=Notification.Status.SENDING).update(
            status=Notification.Status.FAILED, lease_until=None, last_error=error[:500]
        )
        address_failed(alert.clinic_id, notification.channel, notification.address, error, now)
        AlertEvent.objects.create(
            alert=alert,
            at=now,
            kind=AlertEvent.Kind.FAILED,
            detail=f"{notification.get_channel_display()} to {_who(notification)} failed: {error}"[:255],
        )
    log.warning("notification %s failed permanently: %s", notification.pk, error)
    return "failed"
