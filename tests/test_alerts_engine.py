"""Escalation engine, one scan step at a time with frozen time (no worker needed)."""

from datetime import datetime, timedelta
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext

from alerts import delivery, engine
from alerts import services as alert_services
from alerts.models import Alert, AlertEvent, AlertKind, FailingAddress, Notification, Severity
from clinics.models import Role
from patients import services
from patients.models import PumpEvent

from .factories import filled_pump as worked_example_pump
from .factories import member, put_on_rota

PHX = ZoneInfo("America/Phoenix")
FILLED = datetime(2026, 1, 5, 9, tzinfo=PHX)
# Worked example: due 2026-04-29, overdue from 04-30 00:00, critical from 2026-05-04 00:14:17.
DUE_SOON = datetime(2026, 4, 20, 9, tzinfo=PHX)
OVERDUE = datetime(2026, 4, 30, 9, tzinfo=PHX)
CRITICAL = datetime(2026, 5, 4, 9, tzinfo=PHX)


@pytest.fixture
def staff(clinic):
    return {
        "nurse": member(clinic, Role.NURSE, username="nurse-a"),
        "oncall": member(clinic, Role.NURSE, username="nurse-oncall"),
        "physician": member(clinic, Role.PHYSICIAN, username="dr-b"),
        "admin": member(clinic, Role.CLINIC_ADMIN, username="admin-c"),
    }


@pytest.fixture
def on_call(staff):
    put_on_rota(staff["oncall"].memberships.get().clinic, staff["oncall"])
    return staff["oncall"]


def filled_pump(clinic, staff, **patient_fields):
    return worked_example_pump(clinic, staff["nurse"], patient=patient_fields, assigned_nurse=staff["nurse"])


def scan(now):
    report = engine.evaluate_conditions(now)
    steps = engine.advance_escalations(now)
    return report, steps


def recipients(alert, channel="email"):
    return sorted(n.recipient.username for n in alert.notifications.filter(channel=channel))


@pytest.mark.django_db
def test_due_soon_pump_reminds_its_assigned_nurse(clinic, staff):
    pump = filled_pump(clinic, staff)
    report, steps = scan(DUE_SOON)
    alert = Alert.objects.get(pump=pump)
    assert (alert.kind, alert.severity, report.raised, steps) == (AlertKind.REFILL_DUE, Severity.REMINDER, 1, 1)
    assert recipients(alert) == ["nurse-a"]
    assert recipients(alert, "in_app") == ["nurse-a"]


@pytest.mark.django_db
def test_refill_booked_before_due_date_resolves_the_reminder(clinic, staff):
    pump = filled_pump(clinic, staff)
    scan(DUE_SOON)
    _, warnings = services.schedule_appointment(
        pump=pump,
        actor=staff["nurse"],
        kind="refill",
        scheduled_for=datetime(2026, 4, 27, 10, tzinfo=PHX),
        now=DUE_SOON,
    )
    alert = Alert.objects.get(pump=pump)
    assert warnings == [] and alert.status == "resolved" and alert.resolution == "Condition cleared"
    scan(DUE_SOON + timedelta(hours=1))
    assert Alert.objects.open().count() == 0


@pytest.mark.django_db
def test_refill_booked_after_due_date_keeps_the_reminder(clinic, staff):
    pump = filled_pump(clinic, staff)
    services.schedule_appointment(
        pump=pump, actor=staff["nurse"], kind="refill", scheduled_for=datetime(2026, 5, 1, 10, tzinfo=PHX), now=DUE_SOON
    )
    scan(DUE_SOON)
    assert Alert.objects.open().get(pump=pump).kind == AlertKind.REFILL_DUE


@pytest.mark.django_db
def test_overdue_pump_notifies_nurses_and_on_call_then_physician_after_four_hours(clinic, staff, on_call):
    pump = filled_pump(clinic, staff)
    scan(OVERDUE)
    alert = Alert.objects.get(pump=pump)
    assert (alert.kind, alert.severity) == (AlertKind.REFILL_OVERDUE, Severity.URGENT)
    assert recipients(alert) == ["nurse-a", "nurse-oncall"]
    scan(OVERDUE + timedelta(hours=3, minutes=59))
    assert recipients(alert) == ["nurse-a", "nurse-oncall"]
    scan(OVERDUE + timedelta(hours=4))
    assert recipients(alert) == ["dr-b", "nurse-a", "nurse-oncall"]
    assert list(alert.timeline.values_list("kind", flat=True)) == ["raised", "notified", "escalated"]


@pytest.mark.django_db
def test_worsening_condition_upgrades_the_same_alert_and_escalates_again(clinic, staff, on_call):
    pump = filled_pump(clinic, staff)
    scan(DUE_SOON)
    alert = Alert.objects.get(pump=pump)
    alert_services.acknowledge_alert(alert=alert, actor=staff["nurse"], now=DUE_SOON + timedelta(minutes=5))
    scan(OVERDUE)
    scan(CRITICAL)
    alert.refresh_from_db()
    assert Alert.objects.filter(pump=pump).count() == 1
    assert (alert.kind, alert.severity, alert.status) == (AlertKind.RESERVOIR_CRITICAL, Severity.CRITICAL, "triggered")
    assert "dr-b" in recipients(alert)
    assert list(alert.timeline.filter(kind="upgraded").values_list("detail", flat=True)) == [
        "Now Refill overdue, Urgent",
        "Now Reservoir critical, Critical",
    ]


@pytest.mark.django_db
def test_critical_repeats_every_thirty_minutes_until_acknowledged_then_realerts(clinic, staff, on_call):
    pump = filled_pump(clinic, staff)
    scan(CRITICAL)
    alert = Alert.objects.get(pump=pump)
    for minutes in (30, 60):
        scan(CRITICAL + timedelta(minutes=minutes))
    assert alert.timeline.filter(kind="repeated").count() == 2
    alert_services.acknowledge_alert(alert=alert, actor=staff["physician"], now=CRITICAL + timedelta(minutes=61))
    sent_before = alert.notifications.count()
    scan(CRITICAL + timedelta(minutes=90))
    scan(CRITICAL + timedelta(minutes=120))
    assert alert.notifications.count() == sent_before  # repeats paused
    scan(CRITICAL + timedelta(minutes=61 + 60))  # the critical policy re-alerts after 60 minutes
    alert.refresh_from_db()
    assert alert.status == "triggered"
    assert alert.timeline.filter(kind="realerted").count() == 1
    assert alert.notifications.count() > sent_before


@pytest.mark.django_db
def test_refill_resolves_the_alert_with_the_reason(clinic, staff):
    pump = filled_pump(clinic, staff)
    scan(OVERDUE)
    services.record_refill(
        pump=pump,
        actor=staff["nurse"],
        performed_at=OVERDUE + timedelta(hours=1),
        aspirated_ml=D("5.5"),
        volume_added_ml=D(40),
        concentration_mcg_per_ml=D(2000),
        daily_dose_mcg=D(600),
        now=OVERDUE + timedelta(hours=1),
    )
    alert = Alert.objects.get(pump=pump)
    assert alert.status == "resolved" and alert.resolution.startswith("Refill recorded")
    assert alert.resolved_by == staff["nurse"]


@pytest.mark.django_db
def test_withdrawal_risk_patient_gets_one_step_higher_severity(clinic, staff):
    pump = filled_pump(clinic, staff, sci_at_or_above_t6=True)
    # The high-risk margin (+3 days) makes the pump due 2026-04-26, overdue from 04-27.
    scan(datetime(2026, 4, 27, 9, tzinfo=PHX))
    alert = Alert.objects.get(pump=pump)
    assert (alert.kind, alert.severity) == (AlertKind.REFILL_OVERDUE, Severity.CRITICAL)


@pytest.mark.django_db
def test_level_with_nobody_falls_back_to_clinic_admins(clinic, staff):
    pump = filled_pump(clinic, staff)
    pump.assigned_nurse = None
    pump.save()
    scan(DUE_SOON)
    alert = Alert.objects.get(pump=pump)
    assert alert.nobody_to_notify is True
    assert recipients(alert) == ["admin-c"]
    assert alert.timeline.filter(kind="nobody").exists()


@pytest.mark.django_db
def test_explanted_pump_and_transferred_patient_raise_nothing(clinic, staff):
    pump = filled_pump(clinic, staff)
    other = filled_pump(clinic, staff)
    scan(OVERDUE)
    assert Alert.objects.open().count() == 2
    services.update_pump(pump=pump, actor=staff["nurse"], explanted_on=OVERDUE.date(), now=OVERDUE)
    services.change_patient_status(
        patient=other.patient,
        actor=staff["nurse"],
        status="transferred",
        effective_on=OVERDUE.date(),
        reason="Moved away",
        transferred_to="Another clinic",
        now=OVERDUE,
    )
    scan(OVERDUE + timedelta(hours=1))
    # Only the "left care" notice to the people who must know stays open; nothing is scanned.
    assert list(Alert.objects.open().values_list("kind", "pump")) == [(AlertKind.CARE_ENDED, other.pk)]


@pytest.mark.django_db
def test_reported_critical_alarm_raises_emergency_at_once(clinic, staff, on_call):
    pump = filled_pump(clinic, staff)
    when = datetime(2026, 2, 1, 10, tzinfo=PHX)
    services.record_pump_event(
        pump=pump, actor=staff["nurse"], kind=PumpEvent.Kind.CRITICAL_ALARM, occurred_at=when, now=when
    )
    alert = Alert.objects.get(pump=pump)
    assert (alert.kind, alert.severity, alert.next_step_at) == (AlertKind.PUMP_ALARM, Severity.EMERGENCY, when)
    engine.advance_escalations(when)
    assert recipients(alert) == ["dr-b", "nurse-oncall"]


@pytest.mark.django_db
def test_unexpected_low_reservoir_beep_is_flagged_as_mismatch(clinic, staff):
    pump = filled_pump(clinic, staff)
    when = datetime(2026, 2, 1, 10, tzinfo=PHX)  # the app expects ~32 mL left
    services.record_pump_event(
        pump=pump, actor=staff["nurse"], kind=PumpEvent.Kind.LOW_RESERVOIR_ALARM, occurred_at=when, now=when
    )
    alert = Alert.objects.get(pump=pump)
    assert alert.severity == Severity.CRITICAL and "MISMATCH" in alert.detail


@pytest.mark.django_db
def test_discrepant_refill_asks_a_physician_to_review(clinic, staff):
    pump = filled_pump(clinic, staff)
    services.record_refill(
        pump=pump,
        actor=staff["nurse"],
        performed_at=DUE_SOON,
        aspirated_ml=D("3"),
        volume_added_ml=D(40),
        concentration_mcg_per_ml=D(2000),
        daily_dose_mcg=D(600),
        discrepancy_reason="Short by 5.5 mL",
        now=DUE_SOON,
    )
    alert = Alert.objects.get(pump=pump, kind=AlertKind.RESIDUAL_DISCREPANCY)
    engine.advance_escalations(DUE_SOON)
    assert (alert.severity, recipients(alert)) == (Severity.REVIEW, ["dr-b"])


@pytest.mark.django_db
def test_two_scanners_at_once_never_double_notify(clinic, staff, on_call):
    filled_pump(clinic, staff)
    engine.evaluate_conditions(OVERDUE)
    engine.evaluate_conditions(OVERDUE)
    assert engine.advance_escalations(OVERDUE) == 1
    assert engine.advance_escalations(OVERDUE) == 0  # the step was claimed by the first
    assert Notification.objects.filter(channel="email").count() == 2
    assert engine.enqueue_pending(OVERDUE) == 2
    assert engine.enqueue_pending(OVERDUE) == 0


@pytest.mark.django_db
def test_email_carries_no_patient_identifiers_and_is_never_sent_twice(clinic, staff, settings):
    pump = filled_pump(clinic, staff, given_name="Zebulon", family_name="Quartermaine", mrn="MRN-99887")
    scan(DUE_SOON)
    notification = Notification.objects.get(channel="email")
    assert delivery.deliver(notification.pk, DUE_SOON) == "sent"
    assert delivery.deliver(notification.pk, DUE_SOON) == "skipped"
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    text = message.subject + message.body
    for identifier in ("Zebulon", "Quartermaine", "MRN-99887", pump.serial_number, "1970"):
        assert identifier not in text
    assert Alert.objects.get().reference in text
    assert f"/alerts/{Alert.objects.get().pk}/" in text


@pytest.mark.django_db
def test_smtp_refusal_is_retried_then_marked_failed_and_visible(clinic, staff, settings, monkeypatch):
    import smtplib

    settings.NOTIFICATION_MAX_ATTEMPTS = 2
    filled_pump(clinic, staff)
    scan(DUE_SOON)
    notification = Notification.objects.get(channel="email")

    def refuse(*args, **kwargs):
        raise smtplib.SMTPServerDisconnected("connection refused")

    monkeypatch.setattr("django.core.mail.EmailMessage.send", refuse)
    monkeypatch.setattr("alerts.enqueue.delivery", lambda *a, **k: None)
    assert delivery.deliver(notification.pk, DUE_SOON) == "retry"
    notification.refresh_from_db()
    assert notification.status == "pending" and notification.next_attempt_at == DUE_SOON + timedelta(seconds=30)
    assert delivery.deliver(notification.pk, DUE_SOON) == "skipped"  # not before its back-off
    assert delivery.deliver(notification.pk, DUE_SOON + timedelta(seconds=30)) == "failed"
    failing = FailingAddress.objects.get()
    assert failing.address == "nurse-a@clinic.example" and failing.clinic == clinic
    assert AlertEvent.objects.filter(kind="failed").exists()


@pytest.mark.django_db
def test_expired_lease_is_taken_up_again(clinic, staff):
    filled_pump(clinic, staff)
    scan(DUE_SOON)
    notification = Notification.objects.get(channel="email")
    assert delivery.claim(notification.pk, DUE_SOON)  # a worker took it, then died
    assert engine.release_expired_leases(DUE_SOON + timedelta(seconds=60)) == 0
    assert engine.release_expired_leases(DUE_SOON + timedelta(seconds=121)) == 1
    assert delivery.deliver(notification.pk, DUE_SOON + timedelta(seconds=122)) == "sent"


def _scan_queries(now):
    """Statements of one scan; a bulk insert that SQLite splits into batches (its limit on query
    parameters: rows × columns) counts once — the batches grow with rows, not the statements."""
    with CaptureQueriesContext(connection) as queries:
        engine.run_scan(now)
    statements = []
    for query in queries.captured_queries:
        head = query["sql"].split(" VALUES ")[0] if " VALUES " in query["sql"] else None
        if head and statements and statements[-1] == head:
            continue
        statements.append(head or query["sql"])
    return len(statements)


@pytest.mark.django_db
def test_scan_query_count_does_not_grow_with_pumps_at_rest(clinic, staff, on_call):
    filled_pump(clinic, staff)
    engine.run_scan(OVERDUE)
    one_at_rest = _scan_queries(OVERDUE + timedelta(minutes=5))
    for _ in range(15):
        filled_pump(clinic, staff)  # filled, but not yet due soon at FILLED + 10 days
    many_at_rest = _scan_queries(FILLED + timedelta(days=10))
    assert many_at_rest <= one_at_rest


@pytest.mark.django_db
def test_scan_query_count_does_not_grow_with_newly_due_pumps(clinic, staff, on_call):
    filled_pump(clinic, staff)
    engine.run_scan(FILLED)  # nothing due yet; the heartbeat row exists from here on
    one_new = _scan_queries(OVERDUE)
    for _ in range(15):
        filled_pump(clinic, staff)
    fifteen_new = _scan_queries(OVERDUE)  # the 15 new pumps become overdue in this scan
    assert Alert.objects.count() == 16
    assert fifteen_new == one_new


@pytest.mark.django_db
def test_a_notification_that_kills_its_sender_every_time_fails_instead_of_looping(clinic, staff, settings):
    settings.NOTIFICATION_MAX_ATTEMPTS = 2
    filled_pump(clinic, staff)
    scan(DUE_SOON)
    notification = Notification.objects.get(channel="email")
    for attempt in range(2):
        at = DUE_SOON + timedelta(minutes=5 * attempt)
        assert delivery.claim(notification.pk, at)  # the worker takes it, then dies
        engine.release_expired_leases(at + timedelta(minutes=3))
    notification.refresh_from_db()
    assert notification.status == "failed" and notification.attempts == 2
    assert AlertEvent.objects.filter(kind="failed").exists()
