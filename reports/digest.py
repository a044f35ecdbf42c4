"""The monthly report digest: each clinic's admins get last month's figures by email, on the
clinic's first open day of the month (at its opening time, in its zone), at least once and never
twice for the same month.

Celery beat runs ``run_digests`` every ``REPORT_DIGEST_CHECK_SECONDS``. Each run, in its own
transactions: (1) creates the rows of the digests that have come due (``bulk_create`` with
``ignore_conflicts`` under the unique clinic+month+recipient constraint: two runs at once create
one row each); (2) takes back rows whose sender died mid-delivery (lease expired); (3) hands the
pending rows to the broker after commit, claimed with a token so two runs enqueue each row once.
The delivery task then claims its row with a lease (``alerts.delivery.claim_row``), sends it and
marks it sent: a sent row is never pending again. A transient failure retries with the alerts'
back-off; ``NOTIFICATION_MAX_ATTEMPTS`` failures, or a permanent refusal, fail it.

A beat that missed the first open day catches up later in that month; a month is never sent
after it has ended (a clinic created mid-month gets its first digest the next month).
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from alerts.channels import Permanent, Transient
from alerts.channels import email as email_channel
from alerts.delivery import address_failed, address_works, claim_row, publish_rows, retry_or_fail, take_for_broker
from alerts.models import Channel
from clinics.calendar import ClinicCalendar, calendars_of
from clinics.models import Clinic, Membership, Role
from itb_tracker.celery import app

from . import present
from .figures import Period, clinic_report
from .models import DigestDelivery

log = logging.getLogger(__name__)

DIGEST_TASK = "reports.digests"
DELIVER_TASK = "reports.deliver_digest"
BATCH = 500


# --- when a clinic's digest is due ---------------------------------------------------------


def first_open_day(calendar_: ClinicCalendar, year: int, month: int) -> date | None:
    """The clinic's first open day of the month (weekdays, public holidays and closures)."""
    day = date(year, month, 1)
    while day.month == month:
        if not calendar_.is_closed(day):
            return day
        day += timedelta(days=1)
    return None


def due_month(calendar_: ClinicCalendar, now: datetime) -> date | None:
    """The month (its first day) whose digest is due at ``now``: the month before the current one
    in the clinic's zone, once the clinic has opened on its first open day of the current month."""
    local = now.astimezone(calendar_.zone)
    opening_day = first_open_day(calendar_, local.year, local.month)
    if opening_day is None:
        return None
    opens = datetime.combine(opening_day, calendar_.opens_at, tzinfo=calendar_.zone)
    if now < opens:
        return None
    previous = local.date().replace(day=1) - timedelta(days=1)
    return previous.replace(day=1)


def _admins(clinic_ids) -> dict[int, list[tuple[int, str]]]:
    """(user id, address) of each clinic's active admins with an address, in one query."""
    found: dict[int, list[tuple[int, str]]] = {}
    rows = (
        Membership.objects.active()
        .filter(clinic_id__in=clinic_ids, role=Role.CLINIC_ADMIN)
        .select_related("user")
        .order_by("clinic_id", "user_id")
    )
    for membership in rows:
        if membership.email:
            found.setdefault(membership.clinic_id, []).append((membership.user_id, membership.email))
    return found


# --- the message ----------------------------------------------------------------------------


def report_link(clinic: Clinic, month: date) -> str:
    return f"{settings.SITE_URL}{reverse('report', args=[clinic.pk])}?kind=month&month={month:%Y-%m}"


def render(clinic: Clinic, period: Period, now: datetime) -> tuple[str, str]:
    """Subject and plain-text body: the period's figures with their breakdowns, and a link to the
    page. No patient name, MRN, birth date or pump serial (figures carry none); no late-refill
    list (only its count): the page has it, behind a login, for the clinic's admins."""
    report = clinic_report(clinic, period)
    zone = clinic.zone
    local = now.astimezone(zone)
    lines = [
        f"Monthly report for {clinic.name}: {period.label}",
        f"Days {period.start.isoformat()} to {period.end.isoformat()} in the clinic's zone ({clinic.timezone}).",
        f"Prepared {local:%Y-%m-%d %H:%M} ({clinic.timezone}).",
        "",
    ]
    for section in present.sections(report):
        lines.append(section.name)
        for figure in section.figures:
            lines.append(f"  {figure.label}: {present.with_unit(figure.value, figure.unit)}")
            for label, shown in figure.breakdown:
                lines.append(f"      {label}: {shown}")
        lines.append("")
    late = len(report.late_refills)
    lines += [
        f"Refills after the pump's alarm or empty time: {late}"
        + (" (the list is on the report page)." if late else "."),
        "",
        "Open the report, with its 12-month trends and how each figure is computed (log in):",
        report_link(clinic, period.start),
        "",
        f"This message carries no patient details by design. You receive it as an administrator of {clinic.name}.",
    ]
    subject = f"[ITB Tracker] Monthly report, {period.label} — {clinic.name}"
    return subject, "\n".join(lines) + "\n"


# --- 1. create the due digests ---------------------------------------------------------------


def create_due_digests(now: datetime) -> int:
    """Rows for every admin of every clinic whose digest has come due and who has none yet for
    that month. Queries: clinics, closures, admins, existing rows, then per clinic with missing
    rows its report and one insert."""
    clinics = list(Clinic.objects.all())
    calendars = calendars_of(clinics)
    due = {c.pk: due_month(calendars[c.pk], now) for c in clinics}
    due = {pk: month for pk, month in due.items() if month is not None}
    if not due:
        return 0
    admins = _admins(list(due))
    existing = set(
        DigestDelivery.objects.filter(clinic_id__in=list(due), month__in=set(due.values())).values_list(
            "clinic_id", "month", "recipient_id"
        )
    )
    created = 0
    for clinic in clinics:
        month = due.get(clinic.pk)
        missing = [(uid, addr) for uid, addr in admins.get(clinic.pk, []) if (clinic.pk, month, uid) not in existing]
        if month is None or not missing:
            continue
        subject, body = render(clinic, Period.month(month.year, month.month), now)
        rows = DigestDelivery.objects.bulk_create(
            [
                DigestDelivery(
                    clinic=clinic,
                    month=month,
                    recipient_id=uid,
                    address=address,
                    subject=subject,
                    body=body,
                    created_at=now,
                )
                for uid, address in missing
            ],
            # A concurrent run created some of these first: the constraint keeps theirs.
            ignore_conflicts=True,
        )
        created += len(rows)
    return created


# --- 2 and 3. the outbox: expired leases, enqueueing ------------------------------------------


def release_expired_leases(now: datetime) -> int:
    """Rows whose sender died mid-delivery become pending again (or fail after the last attempt)."""
    expired = DigestDelivery.objects.filter(status=DigestDelivery.Status.SENDING, lease_until__lt=now)
    failed = expired.filter(attempts__gte=settings.NOTIFICATION_MAX_ATTEMPTS).update(
        status=DigestDelivery.Status.FAILED,
        lease_until=None,
        last_error="the sender stopped mid-delivery on every attempt",
    )
    return failed + expired.update(status=DigestDelivery.Status.PENDING, enqueued_at=None, next_attempt_at=None)


def enqueue_pending(now: datetime, limit: int = BATCH) -> int:
    """Hand pending rows to the broker after commit (the alerts' outbox helpers): new ones, retries
    coming due before the next run, ones whose enqueue was lost or never consumed."""
    soon = now + timedelta(seconds=min(settings.REPORT_DIGEST_CHECK_SECONDS, settings.CELERY_MAX_COUNTDOWN_SECONDS))
    mine, countdowns = take_for_broker(
        DigestDelivery.objects.all(), now, soon, order_by=("created_at", "pk"), limit=limit
    )
    if mine:
        transaction.on_commit(lambda: publish(mine, countdowns))
    return len(mine)


def enqueue_delivery(digest_id: int, countdown: int | None = None) -> None:
    """Publish one delivery by its task's registered name (alerts/enqueue.py's pattern)."""
    app.send_task(DELIVER_TASK, args=[digest_id], countdown=countdown, retry=False)


def publish(ids: list[int], countdowns: dict[int, int] | None = None) -> int:
    # enqueue_delivery is looked up at call time (tests replace it).
    return publish_rows(
        DigestDelivery.objects.all(), ids, countdowns, lambda pk, countdown: enqueue_delivery(pk, countdown), "digests"
    )


def run_digests(now: datetime | None = None) -> dict:
    """One beat run: create what has come due, take back dead leases, enqueue."""
    now = now or timezone.now()
    summary = {}
    with transaction.atomic():
        summary["created"] = create_due_digests(now)
    with transaction.atomic():
        summary["released"] = release_expired_leases(now)
    with transaction.atomic():
        summary["enqueued"] = enqueue_pending(now)
    return summary


# --- delivering one ------------------------------------------------------------------------------


def deliver(digest_id: int, now: datetime | None = None) -> str:
    """Send one digest: sent, skipped (not claimable: sent, taken or not due), retry or failed."""
    now = now or timezone.now()
    if not claim_row(DigestDelivery.objects.all(), digest_id, now):
        return "skipped"
    digest = DigestDelivery.objects.get(pk=digest_id)
    try:
        email_channel.send_text(digest.subject, digest.body, digest.address)
    except Transient as exc:
        return retry_or_fail(
            DigestDelivery.objects.all(),
            digest,
            str(exc),
            now,
            send=enqueue_delivery,  # looked up here, at call time (tests replace it)
            fail=lambda error: _fail(digest, error, now),
            what="report digest",
        )
    except Permanent as exc:
        return _fail(digest, str(exc), now)
    with transaction.atomic():
        DigestDelivery.objects.filter(pk=digest_id, status=DigestDelivery.Status.SENDING).update(
            status=DigestDelivery.Status.SENT, sent_at=now, lease_until=None, last_error=""
        )
        address_works(digest.clinic_id, Channel.EMAIL, digest.address, now)
    return "sent"


def _fail(digest: DigestDelivery, error: str, now: datetime) -> str:
    """The digest failed for good: the admin's address joins the clinic's failing-addresses list,
    as a failed notification's does."""
    with transaction.atomic():
        DigestDelivery.objects.filter(pk=digest.pk, status=DigestDelivery.Status.SENDING).update(
            status=DigestDelivery.Status.FAILED, lease_until=None, last_error=error[:500]
        )
        address_failed(digest.clinic_id, Channel.EMAIL, digest.address, f"monthly report digest: {error}", now)
    log.warning("report digest %s failed: %s", digest.pk, error)
    return "failed"
