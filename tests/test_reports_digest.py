"""The monthly report digest (issue 14): last month's figures to each clinic's admins on the
clinic's first open day of the month, at its opening time in its zone; at least once (a
transient refusal is retried), never twice for the same month (a re-run, two runs at once)."""

import threading
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.conf import settings as django_settings
from django.core import mail
from django.db import IntegrityError, transaction

from alerts.models import Channel, FailingAddress
from clinics.models import ClinicClosure, Membership, Role
from reports import digest
from reports.models import DigestDelivery

from .factories import member
from .smtp_sink import SmtpSink
from .test_reports_page import assert_no_identifier, fill, identified_pumps

PHX = ZoneInfo("America/Phoenix")
# December 2026 in Phoenix: Tuesday the 1st is closed for staff training, so the clinic's first
# open day is Wednesday the 2nd, from 08:00.
TRAINING_DAY = date(2026, 12, 1)
FIRST_OPEN = datetime(2026, 12, 2, 8, 0, tzinfo=PHX)


@pytest.fixture
def admins(clinic):
    first = member(clinic, Role.CLINIC_ADMIN, username="admin-ana", email="ana@clinic.example")
    second = member(clinic, Role.CLINIC_ADMIN, username="admin-bo", email="bo@clinic.example")
    return [first, second]


@pytest.fixture
def training_day(clinic):
    return ClinicClosure.objects.create(
        clinic=clinic, first_day=TRAINING_DAY, last_day=TRAINING_DAY, reason="Staff training"
    )


@pytest.fixture
def published(monkeypatch):
    """The delivery tasks handed to the broker (by id), instead of a broker."""
    sent = []
    monkeypatch.setattr(digest, "enqueue_delivery", lambda pk, countdown=None: sent.append((pk, countdown)))
    return sent


def run(now, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        return digest.run_digests(now)


def deliver_all(now, published):
    ids = [pk for pk, _ in published]
    published.clear()
    return [digest.deliver(pk, now) for pk in ids]


def test_beat_runs_the_digest_check_and_a_worker_knows_both_tasks():
    from itb_tracker.celery import app

    entry = django_settings.CELERY_BEAT_SCHEDULE["report-digests"]
    assert entry["task"] == "reports.digests"
    assert entry["schedule"] == django_settings.REPORT_DIGEST_CHECK_SECONDS == 900
    app.loader.import_default_modules()
    assert {"reports.digests", "reports.deliver_digest"} <= set(app.tasks)


def test_the_digest_waits_for_the_clinics_opening_on_its_first_open_day(
    clinic, admins, training_day, published, django_capture_on_commit_callbacks
):
    for before in [datetime(2026, 12, 1, 9, tzinfo=PHX), FIRST_OPEN - timedelta(minutes=1)]:
        with time_machine.travel(before, tick=False):
            assert run(before, django_capture_on_commit_callbacks)["created"] == 0
    with time_machine.travel(FIRST_OPEN, tick=False):
        assert run(FIRST_OPEN, django_capture_on_commit_callbacks) == {"created": 2, "released": 0, "enqueued": 2}
    rows = DigestDelivery.objects.order_by("address")
    assert [(r.month, r.address, r.status) for r in rows] == [
        (date(2026, 11, 1), "ana@clinic.example", "pending"),
        (date(2026, 11, 1), "bo@clinic.example", "pending"),
    ]
    assert sorted(pk for pk, _ in published) == sorted(r.pk for r in rows)


def test_a_month_starting_on_a_weekend_is_sent_on_the_monday(
    clinic, admins, published, django_capture_on_commit_callbacks
):
    """November 2026 begins on a Sunday: October's digest leaves Monday the 2nd at 08:00."""
    assert digest.first_open_day(digest.calendars_of([clinic])[clinic.pk], 2026, 11) == date(2026, 11, 2)
    sunday = datetime(2026, 11, 1, 12, tzinfo=PHX)
    assert run(sunday, django_capture_on_commit_callbacks)["created"] == 0
    monday = datetime(2026, 11, 2, 8, 5, tzinfo=PHX)
    assert run(monday, django_capture_on_commit_callbacks)["created"] == 2
    assert set(DigestDelivery.objects.values_list("month", flat=True)) == {date(2026, 10, 1)}


def test_each_admin_gets_the_month_once_however_often_beat_runs(
    clinic, nurse, admins, training_day, published, django_capture_on_commit_callbacks
):
    # Not to nurses or physicians, nor to an admin no longer active.
    gone = member(clinic, Role.CLINIC_ADMIN, username="admin-gone", email="gone@clinic.example")
    Membership.objects.filter(user=gone).update(is_active=False)
    member(clinic, Role.PHYSICIAN, username="doc", email="doc@clinic.example")
    for minutes in (0, 15, 30):
        now = FIRST_OPEN + timedelta(minutes=minutes)
        with time_machine.travel(now, tick=False):
            run(now, django_capture_on_commit_callbacks)
            deliver_all(now, published)
    later = datetime(2026, 12, 20, 9, tzinfo=PHX)
    run(later, django_capture_on_commit_callbacks)
    assert sorted(m.to[0] for m in mail.outbox) == ["ana@clinic.example", "bo@clinic.example"]
    assert DigestDelivery.objects.filter(status="sent").count() == 2
    # A delivery task redelivered by the broker finds its row sent: nothing goes out again.
    assert digest.deliver(DigestDelivery.objects.first().pk, later) == "skipped"
    assert len(mail.outbox) == 2
    # The database refuses a second row for the same admin and month.
    first = DigestDelivery.objects.first()
    with pytest.raises(IntegrityError), transaction.atomic():
        DigestDelivery.objects.create(
            clinic=clinic,
            month=first.month,
            recipient=first.recipient,
            address="x@clinic.example",
            subject="s",
            body="b",
            created_at=later,
        )


def test_the_digest_has_figures_times_in_the_clinics_zone_a_link_and_no_patient_identifier(
    clinic, nurse, admins, training_day, published, django_capture_on_commit_callbacks
):
    with time_machine.travel(datetime(2026, 11, 20, 12, tzinfo=PHX), tick=False):
        for pump in identified_pumps(clinic, nurse):
            fill(pump, nurse, datetime(2026, 11, 16, 9, tzinfo=PHX), aspirated="20")
    with time_machine.travel(FIRST_OPEN, tick=False):
        run(FIRST_OPEN, django_capture_on_commit_callbacks)
        deliver_all(FIRST_OPEN, published)
    message = mail.outbox[0]
    assert message.subject == f"[ITB Tracker] Monthly report, November 2026 — {clinic.name}"
    body = message.body
    assert "Days 2026-11-01 to 2026-11-30 in the clinic's zone (America/Phoenix)." in body
    assert "Prepared 2026-12-02 08:00 (America/Phoenix)." in body
    assert f"{django_settings.SITE_URL}/reports/{clinic.pk}/?kind=month&month=2026-11" in body
    report = digest.clinic_report(clinic, digest.Period.month(2026, 11))
    for figure in report.figures:
        assert f"  {figure.label}: " in body
    assert_no_identifier(message.subject + body)
    assert message.content_subtype == "plain" and not getattr(message, "alternatives", None)


@pytest.mark.services
@pytest.mark.xdist_group("services")
def test_a_transient_smtp_refusal_is_retried_and_the_digest_arrives_once(
    settings, clinic, admins, training_day, published, django_capture_on_commit_callbacks
):
    """Against a real SMTP server (aiosmtpd): a 451 at RCPT TO puts the digest back with the
    alerts' back-off; the retry delivers it, once."""
    ana = "ana@clinic.example"
    with SmtpSink() as server:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = server.host, server.port
        settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        server.refuse(451, address=ana)
        with time_machine.travel(FIRST_OPEN, tick=False):
            run(FIRST_OPEN, django_capture_on_commit_callbacks)
            first_round = [pk for pk, _ in published]
            published.clear()
            outcomes = {pk: digest.deliver(pk, FIRST_OPEN) for pk in first_round}
        to_ana = DigestDelivery.objects.get(address=ana)
        assert outcomes[to_ana.pk] == "retry"
        assert (to_ana.status, to_ana.attempts) == ("pending", 1)
        assert to_ana.next_attempt_at == FIRST_OPEN + timedelta(seconds=30)
        assert published == [(to_ana.pk, 30)]  # handed back to the broker with its back-off
        assert "451" in to_ana.last_error
        assert digest.deliver(to_ana.pk, FIRST_OPEN + timedelta(seconds=10)) == "skipped"  # not yet
        server.accept()
        assert digest.deliver(to_ana.pk, FIRST_OPEN + timedelta(seconds=30)) == "sent"
        assert [a.code for a in server.rcpt_attempts(ana)] == [451, 250]
        received = server.messages_to(ana)
        assert len(received) == 1
        assert "Monthly report, November 2026" in received[0].subject
        assert len(server.messages_to("bo@clinic.example")) == 1


def test_a_permanent_refusal_fails_the_digest_without_retrying(
    clinic, admins, training_day, published, django_capture_on_commit_callbacks, monkeypatch
):
    def refuse(subject, body, address):
        raise digest.Permanent("recipient refused: 550")

    monkeypatch.setattr(digest.email_channel, "send_text", refuse)
    run(FIRST_OPEN, django_capture_on_commit_callbacks)
    outcomes = deliver_all(FIRST_OPEN, published)
    assert outcomes == ["failed", "failed"]
    assert run(FIRST_OPEN + timedelta(hours=1), django_capture_on_commit_callbacks)["enqueued"] == 0


def test_an_admins_address_refusing_the_digest_joins_the_failing_addresses_until_a_digest_arrives(
    clinic, admins, training_day, published, django_capture_on_commit_callbacks, monkeypatch
):
    """As a failed notification's address does: listed for the clinic's admins (a digest is an
    email), and cleared when the next month's digest to it is delivered."""
    ana = "ana@clinic.example"

    def refuse_ana(subject, body, address):
        if address == ana:
            raise digest.Permanent("recipient refused: 550")

    monkeypatch.setattr(digest.email_channel, "send_text", refuse_ana)
    run(FIRST_OPEN, django_capture_on_commit_callbacks)
    assert sorted(deliver_all(FIRST_OPEN, published)) == ["failed", "sent"]
    failing = FailingAddress.objects.get(clinic=clinic, cleared_at__isnull=True)
    assert (failing.channel, failing.address) == (Channel.EMAIL, ana)
    assert failing.last_error == "monthly report digest: recipient refused: 550"
    assert failing.first_failed_at == FIRST_OPEN

    monkeypatch.setattr(digest.email_channel, "send_text", lambda subject, body, address: None)
    january = datetime(2027, 1, 4, 8, 0, tzinfo=PHX)  # December's digest is due by this Monday
    run(january, django_capture_on_commit_callbacks)
    assert deliver_all(january, published) == ["sent", "sent"]
    failing.refresh_from_db()
    assert failing.cleared_at == january


def test_a_digest_whose_sender_died_is_sent_by_the_next_run(
    clinic, admins, training_day, published, django_capture_on_commit_callbacks
):
    run(FIRST_OPEN, django_capture_on_commit_callbacks)
    pk = published[0][0]
    published.clear()
    assert digest.claim_row(DigestDelivery.objects.all(), pk, FIRST_OPEN)  # a worker took it, then died
    later = FIRST_OPEN + timedelta(seconds=django_settings.NOTIFICATION_LEASE_SECONDS + 1)
    summary = run(later, django_capture_on_commit_callbacks)
    assert summary["released"] == 1
    assert pk in [p for p, _ in published]
    assert digest.deliver(pk, later) == "sent"
    assert DigestDelivery.objects.get(pk=pk).attempts == 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_beat_runs_at_once_create_and_send_each_admins_digest_once(clinic, admins, training_day, monkeypatch):
    """Both runs read "no digest yet" before either inserts (a barrier holds them there): the
    unique constraint keeps one row per admin, and each row is sent once."""
    barrier = threading.Barrier(2, timeout=20)
    real_render = digest.render

    def render_after_both_read(*args, **kwargs):
        barrier.wait()
        return real_render(*args, **kwargs)

    monkeypatch.setattr(digest, "render", render_after_both_read)
    published = []
    lock = threading.Lock()

    def enqueue(pk, countdown=None):
        with lock:
            published.append(pk)

    monkeypatch.setattr(digest, "enqueue_delivery", enqueue)
    errors = []

    def beat():
        from django.db import connection

        try:
            digest.run_digests(FIRST_OPEN)
            for pk in list(published):
                digest.deliver(pk, FIRST_OPEN)
        except Exception as exc:  # pragma: no cover - shown by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=beat) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert DigestDelivery.objects.count() == 2
    assert sorted(published) == sorted(DigestDelivery.objects.values_list("pk", flat=True))  # each enqueued once
    assert sorted(m.to[0] for m in mail.outbox) == ["ana@clinic.example", "bo@clinic.example"]
