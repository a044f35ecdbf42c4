"""The alerting engine on the real stack: PostgreSQL, Redis, a Celery worker process, an SMTP server.

DESIGN.md "Flows" 2–4 end to end: the scan raises and escalates, a real worker delivers through a
real SMTP server (tests/smtp_sink.py), a nurse acknowledges from the alert's page, a refill resolves.

How these tests are built (STACK.md, "Tests that talk to services"):

- PostgreSQL only (``postgres`` marker): the worker is another process, and an in-memory SQLite
  test database is invisible to it. ``transaction=True``, so the worker sees committed rows;
  ``serialized_rollback=True`` restores the catalogues a transactional flush wipes.
- The worker consumes a queue of its own (``unique_queue``) and runs in real time; so the clinical
  dates are placed relative to now (a pump filled 116 days ago is overdue now, 120 days ago
  critical), and "later" is a scan the test runs with a future ``now``.
- The test process publishes through the project's own Celery app, pointed at that broker and
  queue (``project_celery_app_on``), exactly as beat-driven scans do in production.
- Every wait polls against a deadline; every process and server is stopped in a finalizer.
- "Nothing more was sent" is never a sleep: it is proven by the database (no pending or sending
  email left, a scan that enqueued nothing) and, where a task was handed to the worker, by a fence
  (a ping the single-slot worker answers only after the tasks queued before it).

Helpers used by tests/test_alerting_faults.py live here too.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal as D

import pytest
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from alerts import engine
from alerts.models import Alert, AlertEvent, AlertKind, Channel, Heartbeat, Notification, Severity
from alerts.tasks import deliver_notification, scan
from clinics.models import Role
from patients import services as patient_services

from .factories import PatientFactory, PumpFactory, first_fill_order, member, put_on_rota
from .services import (
    CeleryWorker,
    celery_client,
    project_celery_app_on,
    require_redis,
    unique_queue,
    wait_until,
    worker_database_env,
)
from .smtp_sink import SmtpSink

SITE_URL = "https://itb.alerts.test"
# Days since the last fill of a 40 mL pump at 2000 mcg/mL and 600 mcg/day (tests/test_alerts_engine.py's
# worked example): overdue after 115.6 days at the latest (a date boundary in the clinic's zone),
# critical from 118.6 days (an instant), empty at 133 days. So "overdue" holds from now until
# 2.6 days on, "critical" for days from now.
OVERDUE_DAYS = 116
CRITICAL_DAYS = 120
WAIT = 60.0  # seconds: the longest any single wait may take before the test fails

REAL_STACK_MARKS = [
    pytest.mark.postgres,
    pytest.mark.services,
    pytest.mark.xdist_group("services"),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]
pytestmark = REAL_STACK_MARKS


def real_stack(test):
    """Decorator form of ``REAL_STACK_MARKS``, for modules that also hold tests needing none."""
    for mark in reversed(REAL_STACK_MARKS):
        test = mark(test)
    return test


# --- the clinic -------------------------------------------------------------------------------


@dataclass
class Staff:
    nurse: object  # the pump's assigned nurse
    oncall: object | None  # a nurse on call
    physician: object | None
    admin: object | None

    def emails(self, *people) -> set[str]:
        return {person.email for person in people}


def clinic_staff(clinic, *, oncall=True, physician=True, admin=True) -> Staff:
    staff = Staff(
        nurse=member(clinic, Role.NURSE, username="nurse-a"),
        oncall=member(clinic, Role.NURSE, username="nurse-oncall") if oncall else None,
        physician=member(clinic, Role.PHYSICIAN, username="dr-b") if physician else None,
        admin=member(clinic, Role.CLINIC_ADMIN, username="admin-c") if admin else None,
    )
    if staff.oncall is not None:
        put_on_rota(clinic, staff.oncall)
    return staff


def filled_pump(clinic, nurse, *, days_ago: float, **patient_fields):
    """A pump last filled ``days_ago`` (40 mL, 2000 mcg/mL, 600 mcg/day), recorded at the time of
    the fill: no alert exists yet — the next scan finds the pump in whatever state it is in now."""
    filled = timezone.now() - timedelta(days=days_ago)
    serial = patient_fields.pop("serial_number", None) or f"SN-{uuid.uuid4().hex[:10]}"
    pump = PumpFactory(
        patient=PatientFactory(clinic=clinic, **patient_fields),
        assigned_nurse=nurse,
        serial_number=serial,
        implanted_on=(filled - timedelta(days=30)).date(),
    )
    patient_services.record_refill(
        pump=pump,
        actor=nurse,
        performed_at=filled,
        aspirated_ml=D(0),
        volume_added_ml=D(40),
        concentration_mcg_per_ml=D(2000),
        daily_dose_mcg=D(600),
        now=filled,
        **first_fill_order(pump, nurse, {}),  # a nurse's first fill names the ordering physician
    )
    return pump


def refill_now(pump, nurse):
    """A refill recorded now, aspirating what the app expected (no discrepancy)."""
    at = timezone.now() - timedelta(minutes=1)
    expected = patient_services.expected_residual_ml(pump, at) or D(0)
    return patient_services.record_refill(
        pump=pump,
        actor=nurse,
        performed_at=at,
        aspirated_ml=expected.quantize(D("0.1")),
        volume_added_ml=D(40),
        concentration_mcg_per_ml=D(2000),
        daily_dose_mcg=D(600),
    )


def emails(**filters):
    return Notification.objects.filter(channel=Channel.EMAIL, **filters)


def email_state() -> str:
    rows = emails().order_by("id").values_list("id", "address", "status", "attempts", "last_error")
    return "; ".join(f"#{pk} {address} {status} x{tries} {error}".strip() for pk, address, status, tries, error in rows)


# --- the stack --------------------------------------------------------------------------------


def running_sink():
    """Body of the ``sink`` fixture (both alerting test modules declare it)."""
    with SmtpSink() as server:
        yield server


def worker_starter(tmp_path, sink):
    """Body of the ``start_worker`` fixture: start real ``celery -A itb_tracker worker`` processes on
    the test database, sending mail to the sink; every one is stopped (warm, then killed) at the end."""
    started: list[CeleryWorker] = []

    def start(broker_url: str, queue: str, *, result_backend: str | None = None, **env) -> CeleryWorker:
        worker = CeleryWorker(
            broker_url,
            queue,
            result_backend=result_backend,
            log_dir=tmp_path,
            extra_env={
                **worker_database_env(),
                "EMAIL_URL": sink.email_url,
                "SITE_URL": SITE_URL,
                "NOTIFICATION_LEASE_SECONDS": "5",
                "CELERY_VISIBILITY_TIMEOUT": "3600",
                "CONN_MAX_AGE": "0",
                **{name: str(value) for name, value in env.items()},
            },
            stop_timeout=10,
        )
        started.append(worker)
        worker.start()
        return worker

    try:
        yield start
    finally:
        for worker in reversed(started):
            worker.stop()


@pytest.fixture
def sink():
    yield from running_sink()


@pytest.fixture
def start_worker(transactional_db, tmp_path, sink):
    yield from worker_starter(tmp_path, sink)


@dataclass
class Stack:
    sink: SmtpSink
    worker: CeleryWorker

    def settle(self, expected_messages: int, *, exact: bool = True, timeout: float = WAIT) -> None:
        """Wait until no email is pending or being sent and the sink holds ``expected_messages``
        (or more, when not ``exact``: at-least-once delivery after a crash).

        A notification turns ``sent`` only after the SMTP server accepted the message, so once none
        is pending or sending, no further message can arrive: the count is then final."""
        wait_until(
            lambda: (
                not emails(status__in=[Notification.Status.PENDING, Notification.Status.SENDING]).exists()
                and len(self.sink.messages) >= expected_messages
            ),
            timeout=timeout,
            message=self.state,
        )
        if exact:
            assert len(self.sink.messages) == expected_messages, self.state()

    def fence(self) -> None:
        """Return once the worker has finished every task queued before this call (it has one
        slot and takes one task at a time, acknowledging each late)."""
        token = uuid.uuid4().hex
        with celery_client(
            self.worker.broker_url, queue=self.worker.queue, result_backend=self.worker.result_backend
        ) as client:
            result = client.send_task("itb_tracker.ping", args=[token])
            try:
                assert result.get(timeout=WAIT)["token"] == token
            finally:
                result.forget()

    def state(self) -> str:
        recipients = Counter(r for m in self.sink.messages for r in m.rcpt_tos)
        return f"sink got {dict(recipients)}; emails: {email_state()}; worker log:\n{self.worker.log()[-3000:]}"


@pytest.fixture
def stack(sink, start_worker):
    """The shared test Redis, a queue for this test, a worker on it and the project app pointed at it."""
    broker = require_redis()
    queue = unique_queue("itb-alerts")
    with project_celery_app_on(broker, queue):
        yield Stack(sink, start_worker(broker, queue, result_backend=broker))


def run_scan(now=None) -> dict:
    """One scan in the test process; its deliveries are published as the transactions commit."""
    assert transaction.get_autocommit(), "outside any transaction, so each step's publishing happens at its commit"
    return engine.run_scan(now)


# --- the tests -------------------------------------------------------------------------------


def test_overdue_pump_emails_each_level_recipient_exactly_once_without_patient_identifiers(clinic, stack):
    staff = clinic_staff(clinic)
    pump = filled_pump(
        clinic,
        staff.nurse,
        days_ago=OVERDUE_DAYS,
        given_name="Zebulon",
        family_name="Quartermaine",
        mrn="MRN-55123",
        birth_date=date(1961, 7, 23),
        serial_number="PUMP-SER-7731",
    )
    assert not Alert.objects.exists()

    # The scan runs in the worker, as beat would have it: sent through the project's app.
    scan.apply_async()
    stack.settle(expected_messages=2)

    alert = Alert.objects.get(pump=pump)
    assert (alert.kind, alert.severity, alert.status) == (AlertKind.REFILL_OVERDUE, Severity.URGENT, "triggered")
    level_one = staff.emails(staff.nurse, staff.oncall)
    received = Counter(r for m in stack.sink.messages for r in m.rcpt_tos)
    assert received == Counter(dict.fromkeys(level_one, 1)), stack.state()
    # The physician is the second level (after 4 hours); the admin is no level at all.
    assert set(emails().values_list("address", flat=True)) == level_one
    assert set(emails().values_list("status", flat=True)) == {"sent"}
    assert alert.timeline.filter(kind=AlertEvent.Kind.DELIVERED).count() == 2

    link = f"{SITE_URL}/alerts/{alert.pk}/"
    for message in stack.sink.messages:
        assert alert.reference in message.subject and alert.reference in message.body
        assert link in message.body
        for identifier in ("Zebulon", "Quartermaine", "MRN-55123", "PUMP-SER-7731"):
            assert identifier.lower() not in message.text.lower(), f"{identifier} leaked into an email"
        seen = f"{message.subject}\n{message.body}"
        for birth_date in ("1961-07-23", "07/23/1961", "23/07/1961", "23.07.1961", "Jul 23, 1961", "July 23, 1961"):
            assert birth_date not in seen

    # Another scan in the worker: nothing is due, nothing is sent again.
    scan.apply_async()
    stack.fence()
    summary = Heartbeat.objects.get(name=engine.SCAN).last_summary
    assert (summary["escalated"], summary["enqueued"]) == (0, 0), summary
    assert len(stack.sink.messages) == 2, stack.state()


def test_acknowledging_from_the_alert_page_stops_the_repeats(clinic, stack, client):
    staff = clinic_staff(clinic)
    pump = filled_pump(clinic, staff.nurse, days_ago=CRITICAL_DAYS)
    t0 = timezone.now()
    critical_level = staff.emails(staff.physician, staff.oncall)  # physicians and on-call, every 30 min

    run_scan(t0)
    stack.settle(expected_messages=2)
    alert = Alert.objects.get(pump=pump)
    assert (alert.kind, alert.severity) == (AlertKind.RESERVOIR_CRITICAL, Severity.CRITICAL)
    run_scan(t0 + timedelta(minutes=30))  # nobody acknowledged: the chain repeats
    stack.settle(expected_messages=4)
    assert Counter(r for m in stack.sink.messages for r in m.rcpt_tos) == Counter(dict.fromkeys(critical_level, 2))
    assert alert.timeline.filter(kind=AlertEvent.Kind.REPEATED).count() == 1

    # The nurse opens the emailed link, logs in and acknowledges from the page (a POST).
    client.force_login(staff.nurse)
    assert client.get(reverse("alert-detail", args=[alert.pk])).status_code == 200
    response = client.post(reverse("alert-acknowledge", args=[alert.pk]))
    assert response.status_code == 302
    alert.refresh_from_db()
    assert (alert.status, alert.acknowledged_by) == ("acknowledged", staff.nurse)
    acknowledged_at = alert.acknowledged_at
    realert = timedelta(minutes=alert.policy_snapshot["realert_minutes"])
    assert realert == timedelta(minutes=60)

    # Scans within the re-alert interval: the repeat that was due at t0+60 min is paused.
    for later in (
        t0 + timedelta(minutes=31),
        t0 + timedelta(minutes=60),
        acknowledged_at + realert - timedelta(minutes=1),
    ):
        summary = run_scan(later)
        assert (summary["escalated"], summary["enqueued"]) == (0, 0), (later, summary)
    stack.settle(expected_messages=4)

    # Paused, not silenced: still unresolved after the interval, it notifies again.
    summary = run_scan(acknowledged_at + realert + timedelta(seconds=1))
    assert summary["escalated"] == 1
    stack.settle(expected_messages=6)
    alert.refresh_from_db()
    assert alert.status == "triggered"
    assert alert.timeline.filter(kind=AlertEvent.Kind.REALERTED).count() == 1
    assert alert.timeline.filter(kind=AlertEvent.Kind.ACKNOWLEDGED, actor=staff.nurse).count() == 1


def test_recording_the_refill_resolves_the_alert(clinic, stack):
    staff = clinic_staff(clinic)
    pump = filled_pump(clinic, staff.nurse, days_ago=OVERDUE_DAYS)
    t0 = timezone.now()

    summary = run_scan(t0)
    assert (summary["raised"], summary["escalated"], summary["enqueued"]) == (1, 1, 2)
    stack.settle(expected_messages=2)
    alert = Alert.objects.get(pump=pump)

    # Four hours on, the scan's escalation step names the physician; the delivery is still pending.
    with transaction.atomic():
        assert engine.advance_escalations(t0 + timedelta(hours=4)) == 1
    waiting = emails(status=Notification.Status.PENDING).get()
    assert waiting.address == staff.physician.email

    refill_now(pump, staff.nurse)

    alert.refresh_from_db()
    assert alert.status == "resolved" and alert.resolution.startswith("Refill recorded")
    assert alert.resolved_by == staff.nurse
    waiting.refresh_from_db()
    assert waiting.status == Notification.Status.CANCELLED
    assert alert.timeline.filter(kind=AlertEvent.Kind.RESOLVED).count() == 1

    # Later scans find nothing to raise, escalate or send.
    for later in (t0 + timedelta(hours=5), t0 + timedelta(hours=9), t0 + timedelta(days=1)):
        summary = run_scan(later)
        assert (summary["raised"], summary["escalated"], summary["enqueued"]) == (0, 0, 0), (later, summary)
    assert not Alert.objects.open().exists()
    # Even a delivery task for the cancelled email reaching the worker sends nothing.
    deliver_notification.apply_async(args=[waiting.pk])
    stack.fence()
    waiting.refresh_from_db()
    assert waiting.status == Notification.Status.CANCELLED
    stack.settle(expected_messages=2)
    assert {a for m in stack.sink.messages for a in m.rcpt_tos} == staff.emails(staff.nurse, staff.oncall)
