"""Quiet hours: reminder emails and webhooks raised while the clinic is closed wait for it to open;
nothing else waits (in-app, reviews, urgent, critical, emergency), and the escalation clock does not
move. Clinic opening hours default to 08:00–17:00 on open days (Monday to Friday)."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core import mail

from alerts import delivery, engine
from alerts.models import Alert, AlertKind, Channel, Notification, Severity
from clinics.models import Role
from patients import services
from patients.models import PumpEvent

from .factories import filled_pump, member, put_on_rota

PHX = ZoneInfo("America/Phoenix")


def phx(*args):
    return datetime(*args, tzinfo=PHX)


@pytest.fixture
def staff(clinic):
    nurse = member(clinic, Role.NURSE, username="nurse-a")
    oncall = member(clinic, Role.NURSE, username="nurse-oncall")
    put_on_rota(clinic, oncall)
    return {"nurse": nurse, "oncall": oncall, "physician": member(clinic, Role.PHYSICIAN, username="dr-b")}


@pytest.fixture
def pump(clinic, staff):
    """The worked example: due Wed 2026-04-29, due soon from 04-15, overdue from 04-30 00:00."""
    return filled_pump(clinic, staff["nurse"], assigned_nurse=staff["nurse"])


def emails(alert):
    return list(alert.notifications.filter(channel=Channel.EMAIL))


def enqueued_at(now) -> set[int]:
    engine.enqueue_pending(now)
    return set(Notification.objects.filter(enqueued_at=now).values_list("pk", flat=True))


@pytest.mark.django_db
def test_a_reminder_raised_in_the_evening_emails_when_the_clinic_opens_next_morning(pump, staff):
    evening = phx(2026, 4, 20, 20, 0)  # Monday 20:00, after closing
    engine.evaluate_conditions(evening)
    engine.advance_escalations(evening)
    alert = Alert.objects.get(pump=pump)
    assert (alert.kind, alert.severity) == (AlertKind.REFILL_DUE, Severity.REMINDER)
    [email] = emails(alert)
    assert email.next_attempt_at == phx(2026, 4, 21, 8, 0)
    # In-app: never delayed.
    assert alert.notifications.get(channel=Channel.IN_APP).status == Notification.Status.SENT
    assert email.pk not in enqueued_at(evening)
    assert delivery.deliver(email.pk, evening + timedelta(hours=1)) == "skipped"
    assert mail.outbox == []
    assert email.pk in enqueued_at(phx(2026, 4, 21, 8, 0))
    assert delivery.deliver(email.pk, phx(2026, 4, 21, 8, 0)) == "sent"
    assert len(mail.outbox) == 1


@pytest.mark.django_db
def test_a_reminder_in_opening_hours_goes_at_once(pump):
    morning = phx(2026, 4, 20, 9, 0)
    engine.evaluate_conditions(morning)
    engine.advance_escalations(morning)
    [email] = emails(Alert.objects.get(pump=pump))
    assert email.next_attempt_at is None


@pytest.mark.django_db
def test_a_reminder_the_evening_before_thanksgiving_waits_for_friday(clinic, pump):
    clinic.holiday_country = "US"
    clinic.save()
    wednesday_evening = phx(2026, 4, 20, 18, 0) + (phx(2026, 11, 25) - phx(2026, 4, 20))
    alert, _ = engine.raise_alert(
        pump_id=pump.pk,
        clinic_id=clinic.pk,
        kind=AlertKind.REPLACEMENT_DUE,
        severity=Severity.REMINDER,
        now=wednesday_evening,
    )
    engine.advance_escalations(wednesday_evening)
    [email] = emails(alert)
    assert email.next_attempt_at == phx(2026, 11, 27, 8, 0)  # Thursday is Thanksgiving


@pytest.mark.django_db
def test_an_emergency_at_two_in_the_morning_on_a_public_holiday_goes_out_at_once(clinic, staff, pump):
    clinic.holiday_country = "US"
    clinic.save()
    thanksgiving_2am = phx(2026, 11, 26, 2, 0)
    services.record_pump_event(
        pump=pump,
        actor=staff["nurse"],
        kind=PumpEvent.Kind.CRITICAL_ALARM,
        occurred_at=thanksgiving_2am,
        now=thanksgiving_2am,
    )
    alert = Alert.objects.get(pump=pump, kind=AlertKind.PUMP_ALARM)
    assert alert.severity == Severity.EMERGENCY
    engine.advance_escalations(thanksgiving_2am)
    sent = emails(alert)
    assert sorted(n.recipient.username for n in sent) == ["dr-b", "nurse-oncall"]
    assert all(n.next_attempt_at is None for n in sent)
    assert {n.pk for n in sent} <= enqueued_at(thanksgiving_2am)
    assert [delivery.deliver(n.pk, thanksgiving_2am) for n in sent] == ["sent", "sent"]
    assert len(mail.outbox) == 2


@pytest.mark.django_db
def test_urgent_alerts_and_reminders_of_withdrawal_risk_patients_never_wait(clinic, staff):
    saturday_night = phx(2026, 4, 25, 23, 0)
    ordinary = filled_pump(clinic, staff["nurse"], assigned_nurse=staff["nurse"])
    at_risk = filled_pump(clinic, staff["nurse"], assigned_nurse=staff["nurse"], patient={"prior_withdrawal": True})
    overdue = filled_pump(clinic, staff["nurse"], phx(2025, 12, 28, 9), assigned_nurse=staff["nurse"])
    engine.evaluate_conditions(saturday_night)
    engine.advance_escalations(saturday_night)
    assert all(n.next_attempt_at == phx(2026, 4, 27, 8, 0) for n in emails(Alert.objects.get(pump=ordinary)))
    risky = Alert.objects.get(pump=at_risk)
    assert risky.severity > Severity.REMINDER  # one step higher (or more): never waits
    late = Alert.objects.get(pump=overdue)
    assert late.kind == AlertKind.REFILL_OVERDUE
    for alert in (risky, late):
        assert emails(alert) and all(n.next_attempt_at is None for n in emails(alert))


@pytest.mark.django_db
def test_quiet_hours_do_not_move_the_escalation_clock(pump):
    evening = phx(2026, 4, 20, 20, 0)
    engine.evaluate_conditions(evening)
    engine.advance_escalations(evening)
    alert = Alert.objects.get(pump=pump)
    level = alert.policy_snapshot["levels"][0]
    repeats = alert.policy_snapshot.get("repeat_count")
    expected = evening + timedelta(minutes=level.get("wait_minutes", 30))
    assert alert.next_step_at == (expected if repeats or len(alert.policy_snapshot["levels"]) > 1 else None)


@pytest.mark.django_db
def test_an_alert_upgraded_while_its_reminder_waits_sends_at_once(pump):
    evening = phx(2026, 4, 29, 20, 0)  # Wednesday 20:00, the due date: a reminder, waiting
    engine.evaluate_conditions(evening)
    engine.advance_escalations(evening)
    alert = Alert.objects.get(pump=pump)
    [waiting] = emails(alert)
    assert waiting.next_attempt_at == phx(2026, 4, 30, 8, 0)

    past_midnight = phx(2026, 4, 30, 0, 30)  # overdue now: urgent
    engine.evaluate_conditions(past_midnight)
    alert.refresh_from_db()
    assert (alert.kind, alert.severity) == (AlertKind.REFILL_OVERDUE, Severity.URGENT)
    waiting.refresh_from_db()
    assert waiting.next_attempt_at is None
    engine.advance_escalations(past_midnight)
    urgent = [n for n in emails(alert) if n.pk != waiting.pk]
    assert urgent and all(n.next_attempt_at is None for n in urgent)
    assert {waiting.pk, *(n.pk for n in urgent)} <= enqueued_at(past_midnight)
