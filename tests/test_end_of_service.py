"""Battery end of service (CLINICAL.md): the ERI date from a reported alarm, the projected end of
service, and the replacement alert's steps; and risk flags moving margins and severities."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from alerts import engine
from alerts.models import Alert, AlertKind, Severity
from clinics.models import Role
from patients import services
from patients.models import PumpEvent, PumpModel, PumpProjection

from .factories import ClinicFactory, PatientFactory, PumpFactory, filled_pump, member, pump_model

PHX = ZoneInfo("America/Phoenix")


def at(*args):
    return datetime(*args, tzinfo=PHX)


def replacement_alert(pump):
    return Alert.objects.open().filter(pump=pump, kind=AlertKind.REPLACEMENT_DUE).first()


@pytest.mark.django_db
def test_catalogue_gives_synchromed_ii_ninety_days_and_constant_flow_none(db):
    assert pump_model("SynchroMed II 40 mL").days_eri_to_end_of_service == 90
    assert pump_model("SynchroMed II 20 mL").days_eri_to_end_of_service == 90
    assert PumpModel.objects.get(kind="constant_flow").days_eri_to_end_of_service is None


@pytest.mark.django_db
def test_reported_eri_alarm_sets_the_eri_date_in_the_clinics_zone_and_the_earlier_date_wins(clinic, nurse):
    pump = filled_pump(clinic, nurse)
    # 22:00 in Phoenix is already the next day in UTC: the clinic's date is the 10th.
    services.record_pump_event(
        pump=pump, actor=nurse, kind=PumpEvent.Kind.ERI_ALARM, occurred_at=at(2026, 3, 10, 22), now=at(2026, 3, 10, 22)
    )
    pump.refresh_from_db()
    assert pump.eri_on == date(2026, 3, 10)
    assert PumpProjection.objects.get(pump=pump).end_of_service_on == date(2026, 6, 8)
    assert pump.history.first().history_change_reason == "ERI alarm reported"
    # A later report keeps the earlier date.
    services.record_pump_event(
        pump=pump, actor=nurse, kind=PumpEvent.Kind.ERI_ALARM, occurred_at=at(2026, 3, 20, 9), now=at(2026, 3, 20, 9)
    )
    pump.refresh_from_db()
    assert pump.eri_on == date(2026, 3, 10)


@pytest.mark.django_db
def test_reported_eri_earlier_than_the_projected_date_replaces_it(clinic, nurse):
    pump = filled_pump(clinic, nurse, eri_on=date(2026, 9, 1))
    services.record_pump_event(
        pump=pump, actor=nurse, kind=PumpEvent.Kind.ERI_ALARM, occurred_at=at(2026, 2, 1, 9), now=at(2026, 2, 1, 9)
    )
    pump.refresh_from_db()
    assert pump.eri_on == date(2026, 2, 1)
    # At once: urgent, the ERI is reported.
    alert = replacement_alert(pump)
    assert alert.severity == Severity.URGENT and "2026-05-02" in alert.detail


@pytest.mark.django_db
def test_replacement_alert_is_a_reminder_then_urgent_at_eri_then_critical_within_30_days_of_end_of_service(
    clinic, nurse
):
    pump = filled_pump(clinic, nurse, eri_on=date(2026, 6, 1))  # end of service 2026-08-30
    engine.evaluate_conditions(at(2026, 1, 10, 9))
    assert replacement_alert(pump).severity == Severity.REMINDER
    engine.evaluate_conditions(at(2026, 6, 1, 9))
    assert replacement_alert(pump).severity == Severity.URGENT
    engine.evaluate_conditions(at(2026, 7, 30, 9))
    assert replacement_alert(pump).severity == Severity.URGENT
    engine.evaluate_conditions(at(2026, 7, 31, 9))
    alert = replacement_alert(pump)
    assert alert.severity == Severity.CRITICAL and "2026-08-30" in alert.detail


@pytest.mark.django_db
def test_a_withdrawal_risk_flag_steps_the_replacement_alert_up(clinic, nurse):
    pump = filled_pump(clinic, nurse, eri_on=date(2026, 6, 1), patient={"prior_withdrawal": True})
    engine.evaluate_conditions(at(2026, 6, 2, 9))
    assert replacement_alert(pump).severity == Severity.CRITICAL


@pytest.mark.django_db
def test_a_replacement_booked_before_end_of_service_quiets_the_alert(clinic, nurse):
    pump = filled_pump(clinic, nurse, eri_on=date(2026, 6, 1))
    now = at(2026, 6, 2, 9)
    engine.evaluate_conditions(now)
    assert replacement_alert(pump) is not None
    too_late, _ = services.schedule_appointment(
        pump=pump, actor=nurse, kind="replacement", scheduled_for=at(2026, 9, 1, 8), now=now
    )
    assert replacement_alert(pump) is not None  # after the end of service: no quieter
    services.cancel_appointment(appointment=too_late, actor=nurse, now=now)
    services.schedule_appointment(pump=pump, actor=nurse, kind="replacement", scheduled_for=at(2026, 8, 10, 8), now=now)
    assert replacement_alert(pump) is None
    assert Alert.objects.get(pump=pump, kind=AlertKind.REPLACEMENT_DUE).resolution == "Condition cleared"


@pytest.mark.django_db
def test_a_pump_without_a_battery_has_no_end_of_service(clinic, nurse):
    codman = PumpFactory(
        patient=PatientFactory(clinic=clinic), pump_model=pump_model("3000 30 mL", manufacturer="Codman")
    )
    assert codman.end_of_service_on is None


# --- risk flags move the margin and the severity -------------------------------------------------


@pytest.mark.django_db
def test_a_new_risk_flag_moves_the_due_date_and_raises_open_alerts_a_cleared_one_applies_from_then_on(clinic, nurse):
    pump = filled_pump(clinic, nurse)
    overdue = at(2026, 4, 30, 9)
    engine.evaluate_conditions(overdue)
    alert = Alert.objects.open().get(pump=pump)
    assert alert.severity == Severity.URGENT
    services.update_patient(patient=pump.patient, actor=nurse, sci_at_or_above_t6=True, now=overdue)
    assert PumpProjection.objects.get(pump=pump).unmoved_refill_due_on == date(2026, 4, 26)  # 7 + 3 days
    alert.refresh_from_db()
    assert alert.severity == Severity.CRITICAL
    services.update_patient(
        patient=pump.patient, actor=nurse, sci_at_or_above_t6=False, extra_margin_days=2, now=overdue
    )
    assert PumpProjection.objects.get(pump=pump).unmoved_refill_due_on == date(2026, 4, 27)  # 7 + 2 days
    alert.refresh_from_db()
    assert alert.severity == Severity.CRITICAL  # never lowered under a person's feet


@pytest.mark.django_db
def test_an_auckland_clinics_replacement_reminder_starts_on_its_own_first_day_of_the_warning_window(nurse):
    # Auckland is ahead of UTC: at 01:00 on 2 December there it is still 1 December in UTC. A pump
    # whose ERI date is exactly the warning window away from the clinic's day is due its reminder
    # now, not once the UTC date catches up half a day later.
    clinic = ClinicFactory(name="Auckland Test Clinic", timezone="Pacific/Auckland")
    nurse_there = member(clinic, Role.NURSE, username="nurse-akl")
    window = timedelta(days=clinic.replacement_warning_days)
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)  # the scan's clock: 01:00 on 2 December in Auckland
    pump = filled_pump(clinic, nurse_there, now - timedelta(days=20), eri_on=date(2026, 12, 2) + window)
    engine.evaluate_conditions(now)
    assert replacement_alert(pump).severity == Severity.REMINDER
