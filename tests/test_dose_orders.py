"""The ordering physician on every path (refill, amendment, program change, first fill), the MRI
emptying visit, and the refill after a projected empty reservoir (CLINICAL.md)."""

from datetime import datetime, timedelta
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError

from alerts.models import Alert, AlertKind, Severity
from clinics.models import Role
from patients import services
from patients.models import RefillVisit

from .factories import PatientFactory, filled_pump, member, pump_model

PHX = ZoneInfo("America/Phoenix")
FILLED = datetime(2026, 1, 5, 9, tzinfo=PHX)
NEXT = datetime(2026, 4, 20, 9, tzinfo=PHX)  # expected residual 8.5 mL
# Worked example: nominally empty 2026-05-18 17:00.
EMPTY_AT = datetime(2026, 5, 18, 17, tzinfo=PHX)


@pytest.fixture
def physician(clinic):
    return member(clinic, Role.PHYSICIAN, username="dr-order")


def refill(pump, actor, at=NEXT, **changes):
    values = {
        "performed_at": at,
        "aspirated_ml": D("8.5"),
        "volume_added_ml": D(40),
        "concentration_mcg_per_ml": D(2000),
        "daily_dose_mcg": D(600),
        "now": at,
    }
    values.update(changes)
    return services.record_refill(pump=pump, actor=actor, **values)


def refused_fields(call) -> set[str]:
    with pytest.raises(ValidationError) as caught:
        call()
    return set(caught.value.message_dict)


# --- the four paths -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_nurse_refill_at_the_same_dose_needs_no_order(clinic, nurse):
    pump = filled_pump(clinic, nurse)
    visit = refill(pump, nurse)
    assert visit.program.ordered_by is None


@pytest.mark.django_db
@pytest.mark.parametrize(
    "change",
    [{"daily_dose_mcg": D(650)}, {"bolus_mcg_per_day": D(50)}, {"concentration_mcg_per_ml": D(1000)}],
    ids=["daily dose", "bolus", "concentration"],
)
def test_nurse_refill_changing_the_dose_without_a_physician_is_refused(clinic, nurse, change):
    pump = filled_pump(clinic, nurse)
    assert refused_fields(lambda: refill(pump, nurse, **change)) == {"ordered_by"}
    assert pump.refills.count() == 1


@pytest.mark.django_db
def test_nurse_refill_changing_the_dose_records_the_ordering_physician(clinic, nurse, physician):
    pump = filled_pump(clinic, nurse)
    assert refill(pump, nurse, daily_dose_mcg=D(650), ordered_by=physician).program.ordered_by == physician


@pytest.mark.django_db
def test_physicians_own_dose_change_records_the_physician(clinic, nurse, physician):
    pump = filled_pump(clinic, nurse)
    assert refill(pump, physician, daily_dose_mcg=D(650)).program.ordered_by == physician


@pytest.mark.django_db
def test_superuser_named_as_ordering_physician_is_refused_on_a_refill(clinic, nurse, superuser):
    pump = filled_pump(clinic, nurse)
    assert refused_fields(lambda: refill(pump, nurse, daily_dose_mcg=D(650), ordered_by=superuser)) == {"ordered_by"}


@pytest.mark.django_db
def test_refill_done_elsewhere_may_name_an_outside_prescriber(clinic, nurse):
    pump = filled_pump(clinic, nurse)
    visit = refill(
        pump,
        nurse,
        daily_dose_mcg=D(650),
        performed_elsewhere="St. Example Hospital (fictional), admitted",
        outside_prescriber="Dr. Placeholder (fictional)",
    )
    assert visit.program.outside_prescriber == "Dr. Placeholder (fictional)"
    assert visit.program.ordered_by is None


@pytest.mark.django_db
def test_outside_prescriber_stands_in_only_for_a_refill_done_elsewhere(clinic, nurse):
    pump = filled_pump(clinic, nurse)
    fields = refused_fields(lambda: refill(pump, nurse, daily_dose_mcg=D(650), outside_prescriber="Dr. Anyone"))
    assert fields == {"outside_prescriber"}


@pytest.mark.django_db
def test_restart_from_zero_counts_as_a_dose_change(clinic, nurse, physician):
    pump = filled_pump(clinic, nurse)
    stop = datetime(2026, 2, 1, 9, tzinfo=PHX)
    services.change_program(
        pump=pump, actor=physician, effective_at=stop, daily_dose_mcg=D(0), stop_reason="MRI", now=stop
    )
    restart = stop + timedelta(hours=3)
    assert refused_fields(
        lambda: services.change_program(
            pump=pump, actor=nurse, effective_at=restart, daily_dose_mcg=D(600), now=restart
        )
    ) == {"ordered_by"}


@pytest.mark.django_db
def test_nurse_amendment_changing_the_dose_needs_the_physician(clinic, nurse, physician, superuser):
    pump = filled_pump(clinic, nurse)
    visit = refill(pump, nurse)

    def amend(**changes):
        return services.amend_refill(
            refill=visit, actor=nurse, amend_reason="Typed the wrong dose", now=NEXT, **changes
        )

    assert refused_fields(lambda: amend(daily_dose_mcg=D(650))) == {"ordered_by"}
    assert refused_fields(lambda: amend(daily_dose_mcg=D(650), ordered_by=superuser)) == {"ordered_by"}
    amended = amend(daily_dose_mcg=D(650), ordered_by=physician)
    assert (amended.program.daily_dose_mcg, amended.program.ordered_by) == (D(650), physician)
    # Correcting something else needs no order.
    amend(drug_lot="B-1")


@pytest.mark.django_db
def test_nurse_program_change_without_a_physician_is_refused(clinic, nurse, superuser, physician):
    pump = filled_pump(clinic, nurse)
    when = datetime(2026, 2, 1, 9, tzinfo=PHX)

    def change(**kwargs):
        return services.change_program(
            pump=pump, actor=nurse, effective_at=when, daily_dose_mcg=D(650), now=when, **kwargs
        )

    assert refused_fields(change) == {"ordered_by"}
    assert refused_fields(lambda: change(ordered_by=superuser)) == {"ordered_by"}
    assert change(ordered_by=physician).ordered_by == physician


@pytest.mark.django_db
def test_nurse_first_fill_without_a_physician_is_refused(clinic, nurse):
    fields = refused_fields(
        lambda: services.implant_pump(
            patient=PatientFactory(clinic=clinic),
            actor=nurse,
            pump_model=pump_model(),
            serial_number="SN-FIRST",
            implanted_on=FILLED.date(),
            fill={
                "performed_at": FILLED,
                "aspirated_ml": D(0),
                "volume_added_ml": D(40),
                "concentration_mcg_per_ml": D(2000),
                "daily_dose_mcg": D(150),
            },
            now=FILLED,
        )
    )
    assert fields == {"ordered_by"}


# --- emptying for an MRI ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_emptying_for_an_mri_needs_a_stop_reason_and_raises_no_false_discrepancy(clinic, nurse, physician):
    prometra = pump_model("Prometra II 40 mL", manufacturer="Flowonix")
    pump = filled_pump(clinic, nurse, pump_model=prometra)
    assert "volume_added_ml" in refused_fields(
        lambda: refill(pump, nurse, volume_added_ml=D(0), daily_dose_mcg=D(0), ordered_by=physician)
    )
    assert "daily_dose_mcg" in refused_fields(
        lambda: refill(pump, nurse, volume_added_ml=D(0), stop_reason="MRI", ordered_by=physician)
    )
    emptied = refill(pump, nurse, volume_added_ml=D(0), daily_dose_mcg=D(0), stop_reason="MRI", ordered_by=physician)
    assert emptied.discrepancy is False
    assert pump.projection.is_stopped
    after = NEXT + timedelta(days=2)
    restarted = refill(pump, nurse, at=after, aspirated_ml=D(0), ordered_by=physician)
    assert (restarted.expected_residual_ml, restarted.discrepancy, restarted.empty_since) == (D(0), False, None)
    assert not Alert.objects.filter(kind__in=[AlertKind.RESIDUAL_DISCREPANCY, AlertKind.REFILL_AFTER_EMPTY]).exists()


# --- refill after a projected empty reservoir -----------------------------------------------------------------


@pytest.mark.django_db
def test_refill_after_empty_is_detected_with_how_long(clinic, nurse):
    pump = filled_pump(clinic, nurse)
    assert services.refill_after_empty(pump, EMPTY_AT - timedelta(hours=1), D(0)) is None
    empty = services.refill_after_empty(pump, EMPTY_AT + timedelta(hours=10), D(0))
    assert (empty.empty_since, empty.hours_empty, empty.nothing_aspirated, empty.needs_order) == (
        EMPTY_AT,
        D(10),
        False,
        False,
    )
    assert services.refill_after_empty(pump, EMPTY_AT + timedelta(hours=30), D(0)).needs_order


@pytest.mark.django_db
def test_nothing_aspirated_where_the_alarm_threshold_was_expected_is_the_same_warning(clinic, nurse):
    pump = filled_pump(clinic, nurse)
    empty = services.refill_after_empty(pump, NEXT, D("0.5"))  # 8.5 mL expected
    assert (empty.empty_since, empty.nothing_aspirated, empty.needs_order) == (None, True, False)
    assert services.refill_after_empty(pump, NEXT, D("8.0")) is None


@pytest.mark.django_db
def test_refill_after_empty_raises_a_physician_review_and_stores_the_assessment(clinic, nurse):
    pump = filled_pump(clinic, nurse)
    at = EMPTY_AT + timedelta(hours=10)
    visit = refill(pump, nurse, at=at, aspirated_ml=D(0))
    assert (visit.empty_since, visit.withdrawal_signs) == (EMPTY_AT, [])
    alert = Alert.objects.open().get(pump=pump)
    assert (alert.kind, alert.severity) == (AlertKind.REFILL_AFTER_EMPTY, Severity.REVIEW)


@pytest.mark.django_db
def test_refill_after_empty_with_a_withdrawal_sign_ticked_raises_the_emergency_alarm(clinic, nurse):
    pump = filled_pump(clinic, nurse)
    at = EMPTY_AT + timedelta(hours=10)
    visit = refill(pump, nurse, at=at, aspirated_ml=D(0), withdrawal_signs=["itching", "high_fever"])
    assert visit.withdrawal_signs == ["itching", "high_fever"]
    alert = Alert.objects.open().get(pump=pump)
    assert (alert.kind, alert.severity) == (AlertKind.PUMP_ALARM, Severity.EMERGENCY)


@pytest.mark.django_db
def test_unknown_withdrawal_sign_is_refused(clinic, nurse):
    pump = filled_pump(clinic, nurse)
    assert refused_fields(lambda: refill(pump, nurse, withdrawal_signs=["hiccups"])) == {"withdrawal_signs"}


@pytest.mark.django_db
def test_empty_longer_than_the_clinic_setting_needs_an_order_even_at_the_old_dose(clinic, nurse, physician):
    pump = filled_pump(clinic, nurse)
    at = EMPTY_AT + timedelta(hours=30)
    assert refused_fields(lambda: refill(pump, nurse, at=at, aspirated_ml=D(0))) == {"ordered_by"}
    assert RefillVisit.objects.filter(pump=pump).count() == 1
    visit = refill(pump, nurse, at=at, aspirated_ml=D(0), ordered_by=physician)
    assert visit.program.ordered_by == physician
    # The clinic's setting moves the line.
    services.update_clinic_settings(clinic=clinic, actor=None, restart_order_after_empty_hours=48, now=at)
    pump.patient.clinic.refresh_from_db()
    # 30 hours past the next nominal empty time (133 days 8 hours after the refill).
    later = services.refill_after_empty(pump, at + timedelta(days=133, hours=8 + 30), D(0))
    assert (later.hours_empty, later.needs_order) == (D(30), False)
