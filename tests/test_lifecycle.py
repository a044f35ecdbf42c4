"""A record's life through the services: implant with the first fill, explant, replacement,
leaving care and coming back, and the handover summary (DESIGN.md flows 6 and 7)."""

from datetime import date, datetime, timedelta
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError

from alerts import engine
from alerts.models import Alert, AlertKind, Notification, Severity
from clinics.models import Role
from patients import services
from patients.models import Appointment, Patient, PatientStatusChange, Pump, PumpEvent, PumpProjection, RefillVisit

from .factories import PatientFactory, filled_pump, member, pump_model

PHX = ZoneInfo("America/Phoenix")
IMPLANT_AT = datetime(2026, 1, 5, 9, tzinfo=PHX)
OVERDUE = datetime(2026, 4, 30, 9, tzinfo=PHX)


@pytest.fixture
def physician(clinic):
    return member(clinic, Role.PHYSICIAN, username="dr-order")


def first_fill(**changes):
    fill = {
        "performed_at": IMPLANT_AT,
        "aspirated_ml": D(0),
        "volume_added_ml": D(40),
        "concentration_mcg_per_ml": D(2000),
        "daily_dose_mcg": D(600),
    }
    fill.update(changes)
    return fill


def implant(patient, actor, *, serial="SN-IMPLANT-1", now=IMPLANT_AT, **kwargs):
    kwargs.setdefault("fill", first_fill())
    return services.implant_pump(
        patient=patient,
        actor=actor,
        pump_model=kwargs.pop("pump_model", pump_model()),
        serial_number=serial,
        implanted_on=kwargs.pop("implanted_on", IMPLANT_AT.date()),
        now=now,
        **kwargs,
    )


def refusal(call) -> dict:
    with pytest.raises(ValidationError) as caught:
        call()
    return caught.value.message_dict


# --- implant with first fill ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_implant_with_first_fill_puts_the_pump_on_the_worklist_with_the_high_risk_margin(clinic, nurse, physician):
    patient = PatientFactory(clinic=clinic, sci_at_or_above_t6=True)
    pump = implant(patient, nurse, assigned_nurse=nurse, fill=first_fill(ordered_by=physician))
    refill = pump.refills.get()
    assert refill.expected_residual_ml is None and refill.discrepancy is False
    assert refill.program.ordered_by == physician and refill.program.entered_by == nurse
    assert pump.lra_ml == D("2.00") and pump in Pump.objects.in_service()
    # Worked example's conservative alarm 2026-05-06 minus 7 + 3 high-risk days.
    assert PumpProjection.objects.get(pump=pump).unmoved_refill_due_on == date(2026, 4, 26)


@pytest.mark.django_db
def test_nurse_first_fill_without_an_ordering_physician_is_refused_and_nothing_stored(clinic, nurse):
    patient = PatientFactory(clinic=clinic)
    errors = refusal(lambda: implant(patient, nurse))
    assert list(errors) == ["ordered_by"]
    assert not Pump.objects.exists() and not RefillVisit.objects.exists()


@pytest.mark.django_db
def test_superuser_named_as_ordering_physician_is_refused(clinic, nurse, superuser):
    patient = PatientFactory(clinic=clinic)
    errors = refusal(lambda: implant(patient, nurse, fill=first_fill(ordered_by=superuser)))
    assert list(errors) == ["ordered_by"]


@pytest.mark.django_db
def test_physician_of_another_clinic_is_not_an_ordering_physician(clinic, other_clinic, nurse):
    outsider = member(other_clinic, Role.PHYSICIAN, username="dr-elsewhere")
    errors = refusal(lambda: implant(PatientFactory(clinic=clinic), nurse, fill=first_fill(ordered_by=outsider)))
    assert list(errors) == ["ordered_by"]


@pytest.mark.django_db
def test_physician_implanting_is_recorded_as_the_ordering_physician(clinic, physician):
    pump = implant(PatientFactory(clinic=clinic), physician)
    assert pump.programs.get().ordered_by == physician


@pytest.mark.django_db
def test_implant_refusal_names_the_pump_fields_and_the_fill_fields_together(clinic, nurse, physician):
    first = implant(PatientFactory(clinic=clinic), physician, serial="SN-TAKEN")
    errors = refusal(
        lambda: implant(
            PatientFactory(clinic=clinic),
            nurse,
            serial="SN-TAKEN",
            lra_ml=D(45),
            fill=first_fill(volume_added_ml=D(41), ordered_by=physician),
        )
    )
    assert {"serial_number", "lra_ml", "volume_added_ml"} <= set(errors)
    assert Pump.objects.get() == first


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"implanted_on": date(2026, 1, 6)}, "implanted_on"),  # the day after "now"
        (
            {"implanted_on": date(2026, 1, 5), "fill": first_fill(performed_at=datetime(2026, 1, 4, 9, tzinfo=PHX))},
            "performed_at",
        ),
        ({"fill": first_fill(daily_dose_mcg=D(1440))}, "dose_change_confirmed"),  # high dose, unconfirmed
        ({"fill": first_fill(daily_dose_mcg=D(3100), dose_change_confirmed=True)}, "daily_dose_mcg"),
        ({"fill": first_fill(volume_added_ml=D(0))}, "volume_added_ml"),
        ({"fill": {**first_fill(), "pump": 1}}, "pump"),
    ],
)
def test_implant_refusals(clinic, physician, changes, field):
    errors = refusal(lambda: implant(PatientFactory(clinic=clinic), physician, **changes))
    assert field in errors
    assert not Pump.objects.exists()


@pytest.mark.django_db
def test_constant_flow_pump_needs_its_flow_rate_and_takes_its_dose_from_it(clinic, physician):
    codman = pump_model("3000 30 mL", manufacturer="Codman")
    errors = refusal(
        lambda: implant(
            PatientFactory(clinic=clinic),
            physician,
            pump_model=codman,
            fill=first_fill(volume_added_ml=D(30), concentration_mcg_per_ml=D(1000), daily_dose_mcg=None),
        )
    )
    assert "flow_rate_ml_per_day" in errors
    pump = implant(
        PatientFactory(clinic=clinic),
        physician,
        pump_model=codman,
        flow_rate_ml_per_day=D("0.5"),
        fill=first_fill(volume_added_ml=D(30), concentration_mcg_per_ml=D(1000), daily_dose_mcg=None),
    )
    assert pump.programs.get().daily_dose_mcg == D(500)


@pytest.mark.django_db
def test_no_implant_for_a_patient_who_left_care(clinic, physician):
    patient = PatientFactory(clinic=clinic, status=Patient.Status.DECEASED)
    assert "patient" in refusal(lambda: implant(patient, physician))


# --- explant and replacement -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_explant_for_infection_leaves_the_scan_resolves_scanned_alerts_and_keeps_pump_alarms(clinic, nurse):
    pump = filled_pump(clinic, nurse, assigned_nurse=nurse)
    engine.evaluate_conditions(OVERDUE)
    services.record_pump_event(
        pump=pump, actor=nurse, kind=PumpEvent.Kind.CRITICAL_ALARM, occurred_at=OVERDUE, now=OVERDUE
    )
    appointment, _ = services.schedule_appointment(
        pump=pump, actor=nurse, kind="device_check", scheduled_for=OVERDUE + timedelta(days=4), now=OVERDUE
    )
    services.explant_pump(
        pump=pump, actor=nurse, explanted_on=OVERDUE.date(), reason=Pump.ExplantReason.INFECTION, now=OVERDUE
    )
    pump.refresh_from_db()
    assert (pump.status, pump.explant_reason, pump.explanted_on) == ("explanted", "infection", OVERDUE.date())
    assert pump not in Pump.objects.in_service() and not PumpProjection.objects.filter(pump=pump).exists()
    refill_alert = Alert.objects.get(pump=pump, kind=AlertKind.REFILL_OVERDUE)
    assert refill_alert.status == "resolved" and "explanted" in refill_alert.resolution
    assert refill_alert.timeline.filter(kind="resolved", detail__contains="infection").exists()
    assert Alert.objects.get(pump=pump, kind=AlertKind.PUMP_ALARM).is_open
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.CANCELLED
    assert pump.history.first().history_user == nurse
    # The next scan raises nothing for it.
    assert engine.evaluate_conditions(OVERDUE + timedelta(days=1)).raised == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"reason": "bored"}, "reason"),
        ({"explanted_on": date(2026, 5, 1)}, "explanted_on"),  # tomorrow
        ({"explanted_on": date(2025, 5, 1)}, "explanted_on"),  # before the implant
        ({"explanted_on": date(2026, 1, 4)}, "explanted_on"),  # before its last refill
    ],
)
def test_explant_refusals(clinic, nurse, kwargs, field):
    pump = filled_pump(clinic, nurse)
    values = {"explanted_on": OVERDUE.date(), "reason": "infection", **kwargs}
    assert field in refusal(lambda: services.explant_pump(pump=pump, actor=nurse, now=OVERDUE, **values))
    pump.refresh_from_db()
    assert pump.status == Pump.Status.ACTIVE


@pytest.mark.django_db
def test_explanted_pump_cannot_be_explanted_again(clinic, nurse):
    pump = filled_pump(clinic, nurse)
    services.explant_pump(pump=pump, actor=nurse, explanted_on=OVERDUE.date(), reason="not_needed", now=OVERDUE)
    assert "pump" in refusal(
        lambda: services.explant_pump(pump=pump, actor=nurse, explanted_on=OVERDUE.date(), reason="death", now=OVERDUE)
    )


@pytest.mark.django_db
def test_replacement_links_the_pumps_and_checks_the_first_dose_against_the_old_pump(clinic, nurse, physician):
    old = filled_pump(clinic, nurse)
    when = datetime(2026, 4, 1, 10, tzinfo=PHX)

    def replace(**fill):
        return services.replace_pump(
            pump=old,
            actor=nurse,
            explanted_on=when.date(),
            pump_model=pump_model(),
            serial_number="SN-NEW-1",
            implanted_on=when.date(),
            fill=first_fill(performed_at=when, ordered_by=physician, **fill),
            now=when,
        )

    # 600 → 900 mcg/day is a 50 % change from the old pump's dose: not a fresh start.
    errors = refusal(lambda: replace(daily_dose_mcg=D(900)))
    assert list(errors) == ["dose_change_confirmed"]
    old.refresh_from_db()
    assert old.status == Pump.Status.ACTIVE
    new = replace(daily_dose_mcg=D(620))
    old.refresh_from_db()
    assert (old.status, old.explant_reason) == ("explanted", "replacement")
    assert new.replaces == old and old.replaced_by == new
    assert new.refills.get().expected_residual_ml is None


@pytest.mark.django_db
def test_replacement_refusal_names_both_the_explant_and_the_new_pump_fields(clinic, nurse, physician):
    old = filled_pump(clinic, nurse)
    errors = refusal(
        lambda: services.replace_pump(
            pump=old,
            actor=nurse,
            explanted_on=date(2026, 5, 2),
            pump_model=pump_model(),
            serial_number=old.serial_number,
            implanted_on=OVERDUE.date(),
            fill=first_fill(performed_at=OVERDUE),
            now=OVERDUE,
        )
    )
    assert {"explanted_on", "serial_number", "ordered_by"} <= set(errors)


@pytest.mark.django_db
def test_catheter_revision_is_a_pump_event_of_its_own_kind_and_no_emergency(clinic, nurse):
    pump = filled_pump(clinic, nurse)
    event = services.record_pump_event(
        pump=pump, actor=nurse, kind="catheter_revision", occurred_at=OVERDUE, source="clinic", now=OVERDUE
    )
    assert event.get_kind_display() == "Catheter revision"
    assert not Alert.objects.filter(kind=AlertKind.PUMP_ALARM).exists()


# --- leaving care and coming back ----------------------------------------------------------------------


def transfer(patient, actor, effective_on, now, **kwargs):
    values = {"reason": "Moved to Tucson", "transferred_to": "Tucson Pump Clinic (fictional)", **kwargs}
    return services.change_patient_status(
        patient=patient, actor=actor, status="transferred", effective_on=effective_on, now=now, **values
    )


@pytest.mark.django_db
def test_transfer_resolves_scanned_alerts_keeps_reviews_and_alarms_cancels_appointments_and_tells_people(
    clinic, nurse, physician
):
    other_nurse = member(clinic, Role.NURSE, username="nurse-other")
    admin = member(clinic, Role.CLINIC_ADMIN, username="admin-x")
    pump = filled_pump(clinic, nurse, assigned_nurse=nurse)
    engine.evaluate_conditions(OVERDUE)
    services.record_pump_event(
        pump=pump, actor=nurse, kind=PumpEvent.Kind.WITHDRAWAL_SYMPTOMS, occurred_at=OVERDUE, now=OVERDUE
    )
    engine.raise_alert(
        pump_id=pump.pk, clinic_id=clinic.pk, kind=AlertKind.RESIDUAL_DISCREPANCY, severity=Severity.REVIEW, now=OVERDUE
    )
    appointment, _ = services.schedule_appointment(
        pump=pump, actor=nurse, kind="refill", scheduled_for=OVERDUE + timedelta(days=4), now=OVERDUE
    )
    transfer(pump.patient, nurse, OVERDUE.date(), OVERDUE, accepted_first_refill_on=date(2026, 5, 4))

    patient = Patient.objects.get(pk=pump.patient_id)
    assert (patient.status, patient.transferred_to, patient.accepted_first_refill_on) == (
        "transferred",
        "Tucson Pump Clinic (fictional)",
        date(2026, 5, 4),
    )
    assert pump not in Pump.objects.in_service()
    refill_alert = Alert.objects.get(pump=pump, kind=AlertKind.REFILL_OVERDUE)
    assert refill_alert.status == "resolved"
    assert refill_alert.timeline.filter(kind="resolved", detail__contains="Moved to Tucson", actor=nurse).exists()
    assert Alert.objects.get(pump=pump, kind=AlertKind.PUMP_ALARM).is_open
    assert Alert.objects.get(pump=pump, kind=AlertKind.RESIDUAL_DISCREPANCY).is_open
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.CANCELLED
    # Told in the app: the assigned nurse and the clinic's physicians, not everyone.
    notice = Alert.objects.get(pump=pump, kind=AlertKind.CARE_ENDED)
    assert notice.is_open and notice.next_step_at is None
    told = set(
        Notification.objects.filter(alert=notice, channel="in_app").values_list("recipient__username", flat=True)
    )
    assert told == {"nurse", "dr-order"}
    assert other_nurse.username not in told and admin.username not in told
    assert Notification.objects.unread_in_app(physician).filter(alert=notice).exists()
    # Who and why, kept.
    change = PatientStatusChange.objects.get(patient=patient)
    assert (change.recorded_by, change.reason, change.previous_status) == (nurse, "Moved to Tucson", "active")
    assert patient.history.first().history_user == nurse
    # The scan keeps it that way.
    assert engine.evaluate_conditions(OVERDUE + timedelta(hours=1)).raised == 0


@pytest.mark.django_db
def test_transfer_dated_ahead_keeps_the_pump_in_the_scan_until_its_date(clinic, nurse):
    pump = filled_pump(clinic, nurse, assigned_nurse=nurse)
    engine.evaluate_conditions(OVERDUE)
    transfer(pump.patient, nurse, date(2026, 5, 3), OVERDUE)
    pump.patient.refresh_from_db()
    assert pump.patient.status == "active" and pump in Pump.objects.in_service()
    assert services.pending_status_change(pump.patient).effective_on == date(2026, 5, 3)
    assert Alert.objects.get(pump=pump, kind=AlertKind.REFILL_OVERDUE).is_open
    # The day before (late evening in Phoenix is already the 3rd in UTC): still waiting.
    assert services.apply_due_status_changes(datetime(2026, 5, 2, 20, tzinfo=PHX)) == 0
    engine.run_scan(datetime(2026, 5, 3, 0, 30, tzinfo=PHX))
    pump.patient.refresh_from_db()
    assert pump.patient.status == "transferred" and pump not in Pump.objects.in_service()
    assert Alert.objects.get(pump=pump, kind__in=["refill_overdue", "reservoir_critical"]).status == "resolved"
    assert services.pending_status_change(pump.patient) is None


@pytest.mark.django_db
def test_a_new_change_supersedes_a_transfer_still_waiting(clinic, nurse):
    pump = filled_pump(clinic, nurse)
    transfer(pump.patient, nurse, date(2026, 5, 3), OVERDUE)
    services.change_patient_status(
        patient=pump.patient,
        actor=nurse,
        status="active",
        effective_on=OVERDUE.date(),
        reason="Stays with us",
        now=OVERDUE,
    )
    assert services.pending_status_change(pump.patient) is None
    assert services.apply_due_status_changes(datetime(2026, 5, 4, 9, tzinfo=PHX)) == 0
    assert PatientStatusChange.objects.filter(cancelled_at__isnull=False).count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"status": "deceased", "effective_on": date(2026, 5, 1), "reason": "x"}, "status_changed_on"),
        ({"status": "deceased", "effective_on": date(2026, 4, 30), "reason": " "}, "status_reason"),
        ({"status": "transferred", "effective_on": date(2026, 4, 30), "reason": "x"}, "transferred_to"),
        ({"status": "active", "effective_on": date(2026, 4, 30), "reason": "x"}, "status"),
        ({"status": "retired", "effective_on": date(2026, 4, 30), "reason": "x"}, "status"),
        (
            {"status": "deceased", "effective_on": date(2026, 4, 30), "reason": "x", "transferred_to": "y"},
            "transferred_to",
        ),
    ],
)
def test_status_change_refusals(clinic, nurse, kwargs, field):
    pump = filled_pump(clinic, nurse)
    errors = refusal(lambda: services.change_patient_status(patient=pump.patient, actor=nurse, now=OVERDUE, **kwargs))
    assert field in errors
    assert not PatientStatusChange.objects.exists()


@pytest.mark.django_db
def test_deceased_then_active_again_brings_the_pump_back_into_the_scan(clinic, nurse, physician):
    pump = filled_pump(clinic, nurse, assigned_nurse=nurse)
    services.change_patient_status(
        patient=pump.patient,
        actor=nurse,
        status="deceased",
        effective_on=OVERDUE.date(),
        reason="Reported by family",
        now=OVERDUE,
    )
    assert engine.evaluate_conditions(OVERDUE).raised == 0
    # A wrong "deceased": the people told can put it right, and the alerting resumes.
    services.change_patient_status(
        patient=pump.patient,
        actor=physician,
        status="active",
        effective_on=OVERDUE.date(),
        reason="Wrong patient",
        now=OVERDUE,
    )
    assert pump in Pump.objects.in_service()
    assert Alert.objects.open().filter(pump=pump, kind=AlertKind.REFILL_OVERDUE).exists()


@pytest.mark.django_db
def test_update_patient_routes_a_status_change_through_the_rules(clinic, nurse):
    pump = filled_pump(clinic, nurse)
    assert "status_reason" in refusal(
        lambda: services.update_patient(patient=pump.patient, actor=nurse, status="deceased", now=OVERDUE)
    )
    services.update_patient(
        patient=pump.patient, actor=nurse, status="deceased", status_reason="Died at home", now=OVERDUE
    )
    pump.patient.refresh_from_db()
    assert (pump.patient.status, pump.patient.status_changed_on) == ("deceased", OVERDUE.date())


# --- handover summary ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_handover_summary_carries_pump_drug_program_last_refill_and_projected_dates(clinic, nurse, physician):
    pump = filled_pump(clinic, nurse, assigned_nurse=nurse)
    when = datetime(2026, 2, 1, 9, tzinfo=PHX)
    services.change_program(
        pump=pump, actor=nurse, effective_at=when, daily_dose_mcg=D(650), ordered_by=physician, now=when
    )
    summary = services.handover_summary(pump, now=when)
    assert summary["pump"]["serial_number"] == pump.serial_number
    assert summary["drug"]["concentration_mcg_per_ml"] == D(2000)
    assert summary["program"]["daily_dose_mcg"] == D(650)
    assert summary["last_refill"]["performed_at"] == datetime(2026, 1, 5, 9, tzinfo=PHX)
    assert summary["projection"]["refill_due_on"] == PumpProjection.objects.get(pump=pump).refill_due_on
    assert summary["projection"]["lra_at"] is not None
