"""The alert page carries what acting on it needs, per kind (issue #10 item 2): alerts/context.py."""

from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from alerts.context import alert_context
from alerts.engine import raise_alert
from alerts.models import Alert, AlertKind, Severity
from patients import services
from patients.models import Appointment, PumpEvent

from .factories import WORKED_EXAMPLE_FILL, filled_pump

PHOENIX = ZoneInfo("America/Phoenix")
# 56 days after the worked example's fill at 0.3 mL/day: 23.2 mL expected, tolerance ±3.48 mL.
SECOND_REFILL = datetime(2026, 3, 2, 9, tzinfo=PHOENIX)
THIRD_REFILL = datetime(2026, 4, 27, 9, tzinfo=PHOENIX)


def refill(pump, actor, at, aspirated, reason="", **extra):
    return services.record_refill(
        pump=pump,
        actor=actor,
        performed_at=at,
        aspirated_ml=Decimal(aspirated),
        volume_added_ml=Decimal(40),
        concentration_mcg_per_ml=Decimal(2000),
        daily_dose_mcg=Decimal(600),
        discrepancy_reason=reason,
        now=at,
        **extra,
    )


def open_alert(pump, kind):
    return (
        Alert.objects.open()
        .select_related("pump__patient__clinic", "pump__pump_model", "clinic")
        .get(pump=pump, kind=kind)
    )


def context_of(alert, now):
    template, work = alert_context(alert, now)
    return template, work


def queries_of(alert, now) -> int:
    alert = Alert.objects.select_related("pump__patient__clinic", "pump__pump_model", "clinic").get(pk=alert.pk)
    with CaptureQueriesContext(connection) as captured:
        alert_context(alert, now)
    return len(captured)


@pytest.fixture
def discrepant(clinic, nurse):
    """A pump whose second refill aspirated 18 mL where 23.2 mL was expected (a physician review)."""
    pump = filled_pump(clinic, nurse, patient={"family_name": "Residual", "phone": "+1 602 555 0199"})
    refill(pump, nurse, SECOND_REFILL, "18.00", reason="Suspected pocket fill at the last visit")
    return pump


@pytest.mark.django_db
def test_residual_discrepancy_shows_the_refill_it_reviews_with_difference_and_tolerance(discrepant):
    alert = open_alert(discrepant, AlertKind.RESIDUAL_DISCREPANCY)
    template, work = context_of(alert, SECOND_REFILL + timedelta(hours=1))
    assert template == "alerts/context/_review.html"
    reviewed = work.reviewed
    assert reviewed.refill.performed_at == SECOND_REFILL
    assert reviewed.expected_ml == Decimal("23.20")
    assert reviewed.aspirated_ml == Decimal("18.00")
    assert reviewed.difference_ml == Decimal("-5.20")
    assert reviewed.tolerance_ml == Decimal("3.48")
    assert reviewed.out_of_tolerance
    assert reviewed.refill.discrepancy_reason == "Suspected pocket fill at the last visit"
    assert [r.performed_at for r in work.residuals] == [SECOND_REFILL]  # the first fill has no residual
    assert work.chart is not None and work.chart["residuals"][0]["discrepancy"] is True


@pytest.mark.django_db
def test_review_lists_the_last_five_residuals_newest_first_with_calls_and_catheter_revisions(clinic, nurse):
    pump = filled_pump(clinic, nurse)
    at = WORKED_EXAMPLE_FILL
    for _ in range(6):
        at += timedelta(days=28)
        refill(pump, nurse, at, "31.60")  # 40 − 28 × 0.3 = 31.6 mL expected each time
    services.record_pump_event(
        pump=pump, actor=nurse, kind=PumpEvent.Kind.CATHETER_REVISION, occurred_at=at - timedelta(days=3), now=at
    )
    services.record_pump_event(
        pump=pump,
        actor=nurse,
        kind=PumpEvent.Kind.OTHER,
        occurred_at=at - timedelta(days=2),
        notes="Sore pocket",
        now=at,
    )
    last = refill(pump, nurse, at + timedelta(days=28), "25.00", reason="Less than expected")
    alert = open_alert(pump, AlertKind.RESIDUAL_DISCREPANCY)
    _template, work = context_of(alert, last.performed_at)
    assert len(work.residuals) == 5
    assert work.residuals[0] == last and work.residuals[0].difference_ml == Decimal("-6.60")
    assert [e.notes for e in work.calls] == ["Sore pocket"]
    assert [e.kind for e in work.catheter_revisions] == [PumpEvent.Kind.CATHETER_REVISION]


@pytest.mark.django_db
def test_refill_after_empty_review_carries_the_withdrawal_assessment(clinic, nurse, physician):
    pump = filled_pump(clinic, nurse)
    late = datetime(2026, 5, 20, 9, tzinfo=PHOENIX)  # 40 mL at 0.3 mL/day ran out on 2026-04-17
    refill(
        pump,
        physician,
        late,
        "0",
        reason="Empty: patient away",
        ordered_by=physician,
        dose_change_confirmed=True,
    )
    alert = open_alert(pump, AlertKind.REFILL_AFTER_EMPTY)
    _template, work = context_of(alert, late)
    assert work.reviewed.refill.performed_at == late
    assert work.reviewed.refill.empty_since is not None
    assert work.reviewed.withdrawal_sign_labels == []


@pytest.mark.django_db
def test_refill_overdue_alert_shows_reservoir_alarm_due_date_last_refill_and_next_appointment(client, clinic, nurse):
    pump = filled_pump(clinic, nurse)
    now = datetime(2026, 4, 30, 10, tzinfo=PHOENIX)  # overdue from 2026-04-30
    with time_machine.travel(now, tick=False):
        services.schedule_appointment(
            pump=pump, actor=nurse, kind=Appointment.Kind.REFILL, scheduled_for=now + timedelta(days=1), now=now
        )
        from alerts.engine import evaluate_conditions

        evaluate_conditions(now, pump_ids=[pump.pk])
        alert = open_alert(pump, AlertKind.REFILL_OVERDUE)
        template, work = context_of(alert, now)
        assert template == "alerts/context/_refill.html"
        assert work.projection.refill_due_on.isoformat() == "2026-04-29"
        # 115 days and 1 hour at 0.3 mL/day: 40 − 34.5125 mL
        assert work.facts["reservoir_ml"].quantize(Decimal("0.01")) == Decimal("5.49")
        assert work.last_refill.performed_at == WORKED_EXAMPLE_FILL
        assert work.next_appointment.scheduled_for == now + timedelta(days=1)
        client.force_login(nurse)
        html = client.get(reverse("alert-detail", args=[alert.pk])).content.decode()
    assert "Wed 2026-04-29" in html  # the due date, clinic time
    assert "2026-05-01 10:00" in html  # the next appointment in clinic time
    assert reverse("refill-create", args=[pump.pk]) in html
    assert reverse("appointment-create", args=[pump.pk]) in html
    assert "5.5 mL" in html and "Alarm, conservative" in html


@pytest.mark.django_db
def test_delivery_drift_shows_the_ratio_per_interval_and_a_rising_trend(clinic, nurse):
    pump = filled_pump(clinic, nurse)
    refill(pump, nurse, SECOND_REFILL, "21.50")  # 18.5 mL gone of 16.8 programmed: 1.101
    refill(pump, nurse, THIRD_REFILL, "20.00")  # 20.0 of 16.8: 1.190
    alert = open_alert(pump, AlertKind.DELIVERY_DRIFT)
    template, work = context_of(alert, THIRD_REFILL)
    assert template == "alerts/context/_drift.html"
    assert [i.ratio.quantize(Decimal("0.001")) for i in work.intervals] == [Decimal("1.101"), Decimal("1.190")]
    assert work.trend == "rising"
    assert work.ratio == Decimal("1.1459")  # 38.5 ÷ 33.6, stored rounded up
    assert work.threshold == Decimal("1.10")


@pytest.mark.django_db
def test_pump_alarm_shows_the_call_as_recorded_and_the_emergency_instructions(client, clinic, nurse):
    pump = filled_pump(clinic, nurse, patient={"phone": "+1 602 555 0142"})
    at = SECOND_REFILL
    with time_machine.travel(at, tick=False):
        services.record_pump_event(
            pump=pump,
            actor=nurse,
            kind=PumpEvent.Kind.WITHDRAWAL_SYMPTOMS,
            occurred_at=at - timedelta(minutes=10),
            symptoms=["itching", "high_fever"],
            notes="Wife called: he is itching all over",
            now=at,
        )
        alert = open_alert(pump, AlertKind.PUMP_ALARM)
        template, work = context_of(alert, at)
        assert template == "alerts/context/_alarm.html"
        call = work.calls[0]
        assert call.symptom_labels == ["Itching without a rash", "High fever"]
        assert call.reported_by == nurse
        client.force_login(nurse)
        html = client.get(reverse("alert-detail", args=[alert.pk])).content.decode()
    assert "Wife called: he is itching all over" in html
    assert "Patient or carer call" in html
    assert "2026-03-02 08:50" in html  # the call's time, clinic time
    assert "go to the emergency department or call emergency services" in html
    assert services.EMERGENCY_MESSAGE in html


@pytest.mark.django_db
def test_missed_appointment_shows_the_appointment_and_the_patients_phone(client, clinic, nurse):
    pump = filled_pump(clinic, nurse, patient={"phone": "+1 602 555 0177"})
    booked_for = datetime(2026, 4, 20, 10, tzinfo=PHOENIX)
    now = booked_for + timedelta(hours=2)
    with time_machine.travel(now, tick=False):
        appointment, _ = services.schedule_appointment(
            pump=pump, actor=nurse, kind=Appointment.Kind.REFILL, scheduled_for=booked_for, now=booked_for
        )
        services.mark_appointment_missed(appointment=appointment, actor=nurse, now=now)
        alert = open_alert(pump, AlertKind.APPOINTMENT_MISSED)
        template, work = context_of(alert, now)
        assert template == "alerts/context/_missed.html"
        assert work.appointment == appointment and work.phone == "+1 602 555 0177"
        client.force_login(nurse)
        html = client.get(reverse("alert-detail", args=[alert.pk])).content.decode()
    assert "Mon 2026-04-20 10:00" in html and 'href="tel:+1 602 555 0177"' in html


@pytest.mark.django_db
def test_replacement_alert_shows_eri_and_projected_end_of_service(clinic, nurse):
    pump = filled_pump(clinic, nurse)
    pump.pump_model.days_eri_to_end_of_service = 90
    pump.pump_model.save()
    now = datetime(2026, 3, 1, 9, tzinfo=PHOENIX)
    pump.eri_on = datetime(2026, 2, 20).date()
    pump.save()
    alert, _ = raise_alert(
        pump_id=pump.pk,
        clinic_id=clinic.pk,
        kind=AlertKind.REPLACEMENT_DUE,
        severity=Severity.URGENT,
        now=now,
        detail="ERI reached",
    )
    alert = Alert.objects.select_related("pump__patient__clinic", "pump__pump_model", "clinic").get(pk=alert.pk)
    template, work = context_of(alert, now)
    assert template == "alerts/context/_replacement.html"
    assert work.eri_on.isoformat() == "2026-02-20"
    assert work.end_of_service_on.isoformat() == "2026-05-21"
    assert work.days_to_end_of_service == 81
    assert work.booked is None


@pytest.mark.django_db
def test_the_review_context_takes_the_same_queries_whatever_the_pumps_history(clinic, nurse):
    pump = filled_pump(clinic, nurse)
    refill(pump, nurse, SECOND_REFILL, "18.00", reason="Pocket fill?")
    alert = open_alert(pump, AlertKind.RESIDUAL_DISCREPANCY)
    small = queries_of(alert, SECOND_REFILL)
    at = SECOND_REFILL
    for day in range(1, 8):
        services.record_pump_event(
            pump=pump,
            actor=nurse,
            kind=PumpEvent.Kind.CATHETER_REVISION,
            occurred_at=at + timedelta(days=day),
            now=at + timedelta(days=day),
        )
        services.record_pump_event(
            pump=pump,
            actor=nurse,
            kind=PumpEvent.Kind.OTHER,
            occurred_at=at + timedelta(days=day, hours=1),
            now=at + timedelta(days=day, hours=1),
        )
    for _ in range(6):
        at += timedelta(days=28)
        refill(pump, nurse, at, "31.60")
    assert queries_of(alert, at) == small


@pytest.mark.django_db
@pytest.mark.parametrize("kind", [AlertKind.DELIVERY_DRIFT, AlertKind.PUMP_ALARM, AlertKind.REFILL_OVERDUE])
def test_other_kinds_take_the_same_queries_whatever_the_pumps_history(clinic, nurse, kind):
    pump = filled_pump(clinic, nurse)
    alert, _ = raise_alert(
        pump_id=pump.pk, clinic_id=clinic.pk, kind=kind, severity=Severity.URGENT, now=SECOND_REFILL, detail="test"
    )
    small = queries_of(alert, SECOND_REFILL)
    at = WORKED_EXAMPLE_FILL
    for _ in range(6):
        at += timedelta(days=20)
        refill(pump, nurse, at, "34.00")
        services.record_pump_event(pump=pump, actor=nurse, kind=PumpEvent.Kind.OTHER, occurred_at=at, now=at)
    assert queries_of(alert, at) == small


@pytest.mark.django_db
def test_alert_page_queries_do_not_grow_with_the_timeline_or_the_history(client, discrepant, physician):
    alert = open_alert(discrepant, AlertKind.RESIDUAL_DISCREPANCY)
    client.force_login(physician)
    url = reverse("alert-detail", args=[alert.pk])
    client.get(url)
    with CaptureQueriesContext(connection) as first:
        assert client.get(url).status_code == 200
    at = SECOND_REFILL
    for day in range(1, 4):
        services.record_pump_event(
            pump=discrepant,
            actor=physician,
            kind=PumpEvent.Kind.OTHER,
            occurred_at=at + timedelta(days=day),
            now=at + timedelta(days=day),
        )
    from alerts.services import acknowledge_alert

    acknowledge_alert(alert=alert, actor=physician, now=at + timedelta(days=4))
    with CaptureQueriesContext(connection) as second:
        assert client.get(url).status_code == 200
    assert len(second) == len(first)


@pytest.mark.django_db
def test_each_review_shows_its_own_refill_when_a_pump_has_two_discrepancies(discrepant, nurse):
    refill(discrepant, nurse, THIRD_REFILL, "15.00", reason="Again less than expected")
    first, second = Alert.objects.filter(pump=discrepant, kind=AlertKind.RESIDUAL_DISCREPANCY).order_by("raised_at")
    for alert, performed_at in ((first, SECOND_REFILL), (second, THIRD_REFILL)):
        alert = Alert.objects.select_related("pump__patient__clinic", "pump__pump_model", "clinic").get(pk=alert.pk)
        _template, work = context_of(alert, THIRD_REFILL)
        assert work.reviewed.refill.performed_at == performed_at
