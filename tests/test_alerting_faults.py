"""The alerting engine when things break: a worker killed mid-send, Redis down during a scan, two
scans at once, an SMTP server that refuses. Real PostgreSQL, Redis, Celery worker and SMTP server.

DESIGN.md "Flows" 2–3: delivery is at least once — "a duplicate reminder is a nuisance, a lost one
can be a death" — and never twice by the engine's own doing. The set-up rules are those of
tests/test_alerting_real_stack.py (whose helpers these tests share). A test that stops Redis or
kills a worker runs its own ``redis-server`` (``RedisServer``), never the shared one.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.urls import reverse
from django.utils import timezone

from alerts import engine
from alerts.channels import Permanent, Transient
from alerts.channels import email as email_channel
from alerts.models import Alert, AlertEvent, AlertKind, FailingAddress, Heartbeat, Notification, Severity
from clinics.models import Clinic

from .services import RedisServer, project_celery_app_on, require_redis, unique_queue, wait_until
from .smtp_sink import SmtpSink
from .test_alerting_real_stack import (
    CRITICAL_DAYS,
    OVERDUE_DAYS,
    WAIT,
    Stack,
    clinic_staff,
    emails,
    filled_pump,
    real_stack,
    run_scan,
    running_sink,
    worker_starter,
)


@pytest.fixture
def sink():
    yield from running_sink()


@pytest.fixture
def start_worker(transactional_db, tmp_path, sink):
    yield from worker_starter(tmp_path, sink)


@pytest.fixture
def private_redis():
    """A ``redis-server`` of this test's own: it may be stopped, and a killed worker's unacknowledged
    task stays there, not in the shared Redis. (Request it before ``start_worker``: workers are
    then stopped before their broker.)"""
    server = RedisServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


# --- a worker killed mid-send ---------------------------------------------------------------


@real_stack
def test_worker_killed_during_delivery_still_delivers_through_the_lease_sweeper(
    clinic, sink, private_redis, start_worker
):
    staff = clinic_staff(clinic, oncall=False, physician=False, admin=False)  # one recipient
    filled_pump(clinic, staff.nurse, days_ago=OVERDUE_DAYS)
    broker, queue = private_redis.url(), unique_queue("itb-kill")
    # The broker would hand the lost task back only after an hour (visibility timeout): the delivery
    # must come back through the notification's 5-second lease and the scan's sweeper.
    worker_env = {"NOTIFICATION_LEASE_SECONDS": 5, "CELERY_VISIBILITY_TIMEOUT": 3600}
    with project_celery_app_on(broker, queue):
        first = start_worker(broker, queue, **worker_env)
        stack = Stack(sink, first)
        sink.hold_data(120)  # the server takes its time to accept the message: the worker is mid-send

        summary = run_scan()
        assert (summary["raised"], summary["escalated"], summary["enqueued"]) == (1, 1, 1)
        wait_until(lambda: sink.data_started >= 1, timeout=WAIT, message=stack.state)
        notification = emails().get()
        assert (notification.status, notification.attempts) == (Notification.Status.SENDING, 1), stack.state()

        first.kill()  # SIGKILL to the worker's whole process group, mid-SMTP conversation
        assert not first.running
        sink.accept()  # the server is quick again (the dead worker's conversation stays on hold)
        stack = Stack(sink, start_worker(broker, queue, **worker_env))

        # While its lease runs, the delivery is left to its (dead) sender: nothing is taken up again.
        lease_until = notification.lease_until
        early = run_scan(min(timezone.now(), lease_until - timedelta(seconds=1)))
        assert (early["released"], early["enqueued"]) == (0, 0)
        wait_until(lambda: timezone.now() > lease_until, timeout=WAIT, message="the delivery lease to run out")
        summary = run_scan()
        assert (summary["released"], summary["enqueued"]) == (1, 1), summary

        stack.settle(expected_messages=1, exact=False)
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == (Notification.Status.SENT, 2)
    assert len(sink.messages_to(staff.nurse.email)) >= 1  # at least once
    assert Alert.objects.get().timeline.filter(kind=AlertEvent.Kind.DELIVERED).count() == 1


# --- the broker down during a scan ------------------------------------------------------------


@real_stack
def test_redis_down_during_scan_keeps_alerts_and_delivers_when_it_returns(clinic, sink, private_redis, start_worker):
    staff = clinic_staff(clinic)
    pump = filled_pump(clinic, staff.nurse, days_ago=OVERDUE_DAYS)
    broker, queue = private_redis.url(), unique_queue("itb-redis-down")
    with project_celery_app_on(broker, queue):
        private_redis.stop()

        summary = run_scan()  # must not raise: each step commits on its own

        alert = Alert.objects.get(pump=pump)
        assert (alert.kind, alert.status) == (AlertKind.REFILL_OVERDUE, "triggered")
        assert (summary["raised"], summary["escalated"]) == (1, 1)
        stored = emails()
        assert stored.count() == 2
        # Handed to nobody: back in the outbox with no enqueue time, for the next scan.
        assert set(stored.values_list("status", "enqueued_at", "attempts")) == {(Notification.Status.PENDING, None, 0)}
        stored_summary = Heartbeat.objects.get(name=engine.SCAN).last_summary
        assert stored_summary.pop("duration_seconds") >= 0 and stored_summary == summary

        private_redis.start()  # back, on the same port
        stack = Stack(sink, start_worker(broker, queue, result_backend=broker))
        summary = run_scan()
        assert (summary["raised"], summary["escalated"], summary["enqueued"]) == (0, 0, 2)
        stack.settle(expected_messages=2)

    assert set(emails().values_list("status", flat=True)) == {Notification.Status.SENT}
    assert Counter(r for m in sink.messages for r in m.rcpt_tos) == Counter(
        {staff.nurse.email: 1, staff.oncall.email: 1}
    )


# --- two scans at once ----------------------------------------------------------------------


def _in_threads(*scanners) -> list:
    """Run each callable in its own thread (so on its own PostgreSQL connection), all released at
    once; return what each returned, failing with every exception any of them raised."""
    start = threading.Barrier(len(scanners), timeout=WAIT)
    results: list = [None] * len(scanners)

    def run(index, scanner):
        try:
            start.wait()
            results[index] = scanner()
        except BaseException as exc:  # reported below, beside the others' outcomes
            results[index] = exc
        finally:
            connections.close_all()  # this thread's connection: nothing may hold the test database

    threads = [
        threading.Thread(target=run, args=(i, scanner), name=f"scanner-{i}") for i, scanner in enumerate(scanners)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=2 * WAIT)
    assert not any(thread.is_alive() for thread in threads), "a scanner hung"
    failures = [r for r in results if isinstance(r, BaseException)]
    assert not failures, f"a concurrent scan failed: {failures!r}"
    return results


def _race(now, monkeypatch, *, side_by_side_at: str) -> list[dict]:
    """``engine.run_scan(now)`` twice at once. Both scanners wait for each other right before the
    engine calls ``side_by_side_at``, so that step runs truly side by side."""
    meet = threading.Barrier(2, timeout=WAIT)
    original = getattr(engine, side_by_side_at)

    def rendezvous(*args, **kwargs):
        meet.wait()
        return original(*args, **kwargs)

    monkeypatch.setattr(engine, side_by_side_at, rendezvous)
    try:
        return _in_threads(lambda: engine.run_scan(now), lambda: engine.run_scan(now))
    finally:
        monkeypatch.undo()


@real_stack
def test_two_scans_at_once_never_duplicate_notifications(clinic, sink, start_worker, monkeypatch):
    staff = clinic_staff(clinic)
    pumps = [filled_pump(clinic, staff.nurse, days_ago=OVERDUE_DAYS) for _ in range(6)]
    n = len(pumps)
    broker, queue = require_redis(), unique_queue("itb-race")
    with project_celery_app_on(broker, queue):
        stack = Stack(sink, start_worker(broker, queue, result_backend=broker))
        t0 = timezone.now()

        # 1. Both scanners have read that no alert exists yet (the engine reads the clinics' policies
        #    next), then both raise, notify and enqueue, side by side.
        summaries = _race(t0, monkeypatch, side_by_side_at="_policies_for")
        assert [sum(s[k] for s in summaries) for k in ("raised", "escalated", "enqueued")] == [n, n, 2 * n], summaries
        stack.settle(expected_messages=2 * n)  # the nurse and the on-call nurse

        # 2. Four hours on, both take the next level (the physician) at the same moment.
        summaries = _race(t0 + timedelta(hours=4), monkeypatch, side_by_side_at="advance_escalations")
        assert [sum(s[k] for s in summaries) for k in ("raised", "escalated", "enqueued")] == [0, n, n], summaries
        stack.settle(expected_messages=3 * n)

    alerts = list(Alert.objects.all())
    assert sorted(a.pump_id for a in alerts) == sorted(p.pk for p in pumps)  # one alert per pump
    # Each step reached each of its recipients once, through each channel.
    per_recipient = Counter(Notification.objects.values_list("alert_id", "recipient_id", "channel"))
    level_members = (staff.nurse, staff.oncall, staff.physician)
    assert per_recipient == Counter(
        {(a.pk, person.pk, channel): 1 for a in alerts for person in level_members for channel in ("in_app", "email")}
    ), per_recipient
    for alert in alerts:
        steps = Counter(alert.timeline.values_list("kind", flat=True))
        assert (steps["raised"], steps["notified"], steps["escalated"]) == (1, 1, 1), (alert.reference, steps)
    received = Counter((r, m.subject.rsplit(" ", 1)[-1]) for m in sink.messages for r in m.rcpt_tos)
    assert received == Counter({(p.email, a.reference): 1 for a in alerts for p in level_members}), received


@real_stack
def test_a_second_scanner_a_moment_late_never_upgrades_and_notifies_again(clinic, monkeypatch):
    """Beat's scan and a cron ``manage.py escalate`` a second apart, the second one slow: the alerts
    turn critical once, and the critical level is told once. No worker is needed (deliveries go to
    the test broker): this is about the rows the two scanners write.

    The interleaving is forced, and deterministic with or without locking: right after reading the
    open alerts, scanner A holds on until B has read them too, and B until A's whole scan is done —
    each unless the other is already stuck behind a lock it holds (which is how a scan that locks
    what it reads keeps the other out; then waiting on would only deadlock the test).
    """
    staff = clinic_staff(clinic)
    pumps = [filled_pump(clinic, staff.nurse, days_ago=OVERDUE_DAYS) for _ in range(3)]
    t0 = timezone.now()
    run_scan(t0)  # overdue: the nurses were told
    assert Alert.objects.filter(kind=AlertKind.REFILL_OVERDUE).count() == len(pumps)
    critical_at = t0 + timedelta(days=CRITICAL_DAYS - OVERDUE_DAYS)

    pids: dict[str, int] = {}
    b_has_read, a_is_done = threading.Event(), threading.Event()
    original = engine._policies_for

    def holds_up(other: str) -> bool:
        """True when this thread's transaction holds a lock the ``other`` scanner is waiting for."""
        if other not in pids:
            return False
        with connection.cursor() as cursor:  # this thread's connection, inside its transaction
            cursor.execute("SELECT pg_backend_pid() = ANY(pg_blocking_pids(%s))", [pids[other]])
            return cursor.fetchone()[0]

    def after_reading_the_open_alerts(*args, **kwargs):
        if threading.current_thread().name == "scanner-0":  # A: not before B has read them too
            wait_until(lambda: b_has_read.is_set() or holds_up("b"), timeout=WAIT, interval=0.02)
        else:  # B: not before A is done (or stuck behind what B has locked)
            b_has_read.set()
            wait_until(lambda: a_is_done.is_set() or holds_up("a"), timeout=WAIT, interval=0.02)
        return original(*args, **kwargs)

    def scanner(name, now):
        def scan():
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                pids[name] = cursor.fetchone()[0]
            try:
                return engine.run_scan(now)
            finally:
                if name == "a":
                    a_is_done.set()

        return scan

    monkeypatch.setattr(engine, "_policies_for", after_reading_the_open_alerts)
    try:
        _in_threads(scanner("a", critical_at), scanner("b", critical_at + timedelta(seconds=1)))
    finally:
        monkeypatch.undo()

    critical_step = Counter(
        Notification.objects.filter(created_at__gte=critical_at).values_list("alert_id", "recipient_id", "channel")
    )
    for alert in Alert.objects.all():
        assert (alert.kind, alert.severity) == (AlertKind.RESERVOIR_CRITICAL, Severity.CRITICAL)
        steps = Counter(alert.timeline.values_list("kind", flat=True))
        assert (steps["upgraded"], steps["notified"]) == (1, 2), (alert.reference, steps)
        told = {
            (person, channel): critical_step[(alert.pk, person.pk, channel)]
            for person in (staff.physician, staff.oncall)
            for channel in ("in_app", "email")
        }
        assert set(told.values()) == {1}, (alert.reference, told)
        # The next repeat: 30 minutes after the critical step, whichever of the two scanners took it.
        assert alert.next_step_at - timedelta(minutes=30) in (critical_at, critical_at + timedelta(seconds=1))


# --- an SMTP server that refuses --------------------------------------------------------------


@real_stack
def test_smtp_refusing_is_retried_then_marked_failed_and_visible(clinic, sink, start_worker, client):
    staff = clinic_staff(clinic)
    filled_pump(clinic, staff.nurse, days_ago=OVERDUE_DAYS)
    tried_later, refused = staff.nurse.email, staff.oncall.email
    sink.refuse(451, "4.3.0 Local error in processing, try again later", address=tried_later, stage="data")
    sink.refuse(550, "5.1.1 No such user here", address=refused, stage="rcpt")
    broker, queue = require_redis(), unique_queue("itb-smtp")
    with project_celery_app_on(broker, queue):
        # Two attempts at most, the second 2 s after the first (back-off capped by the setting).
        worker = start_worker(broker, queue, NOTIFICATION_MAX_ATTEMPTS=2, CELERY_MAX_COUNTDOWN_SECONDS=2)
        stack = Stack(sink, worker)
        run_scan()
        wait_until(
            lambda: set(emails().values_list("status", flat=True)) == {Notification.Status.FAILED},
            timeout=WAIT,
            message=stack.state,
        )

    transient = emails(address=tried_later).get()
    permanent = emails(address=refused).get()
    # 451: tried again after its back-off, then given up after NOTIFICATION_MAX_ATTEMPTS.
    assert transient.attempts == 2 and "451" in transient.last_error, stack.state()
    first, second = sink.rcpt_attempts(tried_later)
    # The retry waited for its back-off: no claim is taken before next_attempt_at (one clock here).
    assert first.at < second.at
    assert second.at >= transient.next_attempt_at - timedelta(milliseconds=50)
    # 550: refused for good at the first attempt.
    assert permanent.attempts == 1 and "550" in permanent.last_error, stack.state()
    assert len(sink.rcpt_attempts(refused)) == 1
    assert sink.messages == []

    failing = {f.address for f in FailingAddress.objects.filter(clinic=clinic, cleared_at__isnull=True)}
    assert failing == {tried_later, refused}
    alert = Alert.objects.get()
    failed = list(alert.timeline.filter(kind=AlertEvent.Kind.FAILED).values_list("detail", flat=True))
    assert len(failed) == 2
    # The timeline names people by their full name.
    assert any(staff.nurse.get_full_name() in d and "451" in d for d in failed), failed
    assert any(staff.oncall.get_full_name() in d and "550" in d for d in failed), failed

    # Visible: on the alert's timeline, and in the clinic admin's banner (not in a nurse's).
    client.force_login(staff.admin)
    assert client.get(reverse("alert-detail", args=[alert.pk])).content.decode().count("Delivery failed") == 2
    assert "2 notification addresses failing" in client.get(reverse("alert-status")).content.decode()
    client.force_login(staff.nurse)
    assert "addresses failing" not in client.get(reverse("alert-status")).content.decode()


@pytest.mark.services
@pytest.mark.xdist_group("services")
@pytest.mark.parametrize(
    ("stage", "code", "outcome"),
    [
        pytest.param("data", 451, Transient, id="451-after-the-message"),
        pytest.param("rcpt", 451, Transient, id="451-at-rcpt-to"),
        pytest.param("rcpt", 550, Permanent, id="550-at-rcpt-to"),
        pytest.param("data", 554, Permanent, id="554-after-the-message"),
    ],
)
def test_email_channel_tells_a_refusal_worth_retrying_from_a_final_one(settings, stage, code, outcome):
    """The channel against a real SMTP server, in this process (no database, no worker): a 4xx reply
    is worth retrying wherever it comes (its docstring: "a 4xx SMTP reply"), a 5xx is final."""
    address = "nurse@clinic.example"
    with SmtpSink() as server:
        server.refuse(code, address=address, stage=stage)
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = server.host, server.port
        settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        alert = Alert(
            pk=1,
            clinic=Clinic(name="Unsaved clinic", timezone="America/Phoenix"),
            kind=AlertKind.REFILL_OVERDUE,
            severity=Severity.URGENT,
            status="triggered",
            raised_at=timezone.now(),
        )
        with pytest.raises(outcome, match=str(code)):
            email_channel.send(Notification(alert=alert, channel="email", address=address))
        assert [a.code for a in server.rcpt_attempts(address)] == [code if stage == "rcpt" else 250]
        assert server.messages == []
