"""The refill workflow through the patients/services package (the one way every client writes)."""

from datetime import datetime, timedelta
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
import time_machine

from clinics.models import Role
from patients import services
from patients.models import Program, PumpProjection, RefillVisit

from .factories import PatientFactory, PumpFactory, drug_product, first_fill_order, member, pump_model

PHX = ZoneInfo("America/Phoenix")


def at(*args, zone=PHX):
    return datetime(*args, tzinfo=zone)


@pytest.fixture
def pump(clinic):
    return PumpFactory(patient=PatientFactory(clinic=clinic), pump_model=pump_model("SynchroMed II 40 mL"))


def fill(pump, actor, when, volume="40", dose="600", concentration="2000", aspirated="0", **extra):
    return services.record_refill(
        pump=pump,
        actor=actor,
        performed_at=when,
        aspirated_ml=D(aspirated),
        volume_added_ml=D(volume),
        concentration_mcg_per_ml=D(concentration),
        daily_dose_mcg=D(dose),
        now=extra.pop("now", when),
        **first_fill_order(pump, actor, extra),
    )


@pytest.mark.django_db
def test_worked_example_projection_is_stored(pump, nurse):
    fill(pump, nurse, at(2026, 1, 5, 9), drug_product=drug_product("2000"))
    projection = PumpProjection.objects.get(pump=pump)
    assert projection.lra_at == at(2026, 5, 12, 1)
    assert projection.empty_at == at(2026, 5, 18, 17)
    assert projection.conservative_lra_at == at(2026, 5, 6, 0, 14, 17)
    assert projection.drug_expires_at == at(2026, 7, 4, 9)
    assert str(projection.refill_due_on) == "2026-04-29"
    assert projection.reservoir_ml_at(at(2026, 4, 20, 9)) == D("8.5")
    assert projection.status_at(at(2026, 4, 14, 23, 59)) == "ok"
    assert projection.status_at(at(2026, 4, 15)) == "due_soon"
    assert projection.status_at(at(2026, 4, 30)) == "overdue"
    assert projection.status_at(at(2026, 5, 4, 0, 14, 17)) == "critical"


@pytest.mark.django_db
def test_refill_after_worked_example_records_expected_residual_and_moves_due_date(pump, nurse):
    fill(pump, nurse, at(2026, 1, 5, 9))
    refill = fill(pump, nurse, at(2026, 4, 20, 9), aspirated="8.4", volume="40")
    assert refill.expected_residual_ml == D("8.50")
    assert refill.discrepancy is False
    assert PumpProjection.objects.get(pump=pump).refill_due_on > datetime(2026, 4, 29).date()


@pytest.mark.django_db
def test_out_of_tolerance_residual_needs_a_reason_and_then_is_flagged(pump, nurse):
    fill(pump, nurse, at(2026, 1, 5, 9))
    with pytest.raises(services.Refusal) as refused:
        fill(pump, nurse, at(2026, 4, 20, 9), aspirated="4.0")
    assert "discrepancy_reason" in refused.value.message_dict
    assert RefillVisit.objects.count() == 1 and Program.objects.count() == 1
    refill = fill(pump, nurse, at(2026, 4, 20, 9), aspirated="4.0", discrepancy_reason="Suspected over-infusion")
    assert refill.discrepancy is True


@pytest.mark.django_db
def test_history_records_the_nurse_who_recorded_the_refill(pump, nurse):
    refill = fill(pump, nurse, at(2026, 1, 5, 9))
    assert refill.history.get().history_user == nurse
    assert refill.program.history.get().history_user == nurse


@pytest.mark.django_db
def test_amended_refill_keeps_original_in_history_and_projection_follows(pump, nurse):
    refill = fill(pump, nurse, at(2026, 1, 5, 9), volume="20")
    before = PumpProjection.objects.get(pump=pump).lra_at
    services.amend_refill(
        refill=refill, actor=nurse, amend_reason="Typed 20, filled 40", volume_added_ml=D("40"), now=at(2026, 1, 6)
    )
    refill.refresh_from_db()
    assert refill.volume_added_ml == D("40")
    assert [h.volume_added_ml for h in refill.history.order_by("history_date")] == [D("20"), D("40")]
    assert PumpProjection.objects.get(pump=pump).lra_at > before


@pytest.mark.django_db
def test_nurse_dose_change_needs_ordering_physician(pump, nurse, physician):
    fill(pump, nurse, at(2026, 1, 5, 9))
    with pytest.raises(services.Refusal) as refused:
        services.change_program(
            pump=pump, actor=nurse, effective_at=at(2026, 2, 1), daily_dose_mcg=D("650"), now=at(2026, 2, 1)
        )
    assert "ordered_by" in refused.value.message_dict
    program = services.change_program(
        pump=pump,
        actor=nurse,
        effective_at=at(2026, 2, 1),
        daily_dose_mcg=D("650"),
        ordered_by=physician,
        now=at(2026, 2, 1),
    )
    assert program.concentration_mcg_per_ml == D("2000")


@pytest.mark.django_db
def test_dose_increase_mid_cycle_moves_due_date_earlier(pump, nurse, physician):
    fill(pump, nurse, at(2026, 1, 5, 9))
    due_before = PumpProjection.objects.get(pump=pump).refill_due_on
    services.change_program(
        pump=pump, actor=physician, effective_at=at(2026, 2, 1), daily_dose_mcg=D("700"), now=at(2026, 2, 1)
    )
    assert PumpProjection.objects.get(pump=pump).refill_due_on < due_before


@pytest.mark.django_db
def test_wider_clinic_margin_recomputes_due_dates_and_is_audited(pump, nurse, clinic):
    fill(pump, nurse, at(2026, 1, 5, 9))
    admin = member(clinic, Role.CLINIC_ADMIN)
    with time_machine.travel(at(2026, 1, 10), tick=False):
        services.update_clinic_settings(clinic=clinic, actor=admin, refill_margin_days=10)
    projection = PumpProjection.objects.get(pump=pump)
    assert str(projection.unmoved_refill_due_on) == "2026-04-26"  # a Sunday:
    assert str(projection.refill_due_on) == "2026-04-24"  # the clinic's last open day before it
    assert clinic.history.order_by("-history_id").first().history_user == admin


@pytest.mark.django_db
def test_explanted_pump_has_no_projection(pump, nurse):
    fill(pump, nurse, at(2026, 1, 5, 9))
    services.update_pump(pump=pump, actor=nurse, explanted_on=at(2026, 2, 1).date(), now=at(2026, 2, 1))
    assert not PumpProjection.objects.filter(pump=pump).exists()


@pytest.mark.django_db
def test_command_writes_are_attributed_to_system_user(pump):
    refill = fill(pump, None, at(2026, 1, 5, 9))
    assert refill.history.get().history_user.username == "itb-system"


@pytest.mark.django_db
def test_appointment_after_due_date_warns(pump, nurse):
    fill(pump, nurse, at(2026, 1, 5, 9))
    _, warnings = services.schedule_appointment(
        pump=pump, actor=nurse, kind="refill", scheduled_for=at(2026, 5, 1, 9), now=at(2026, 1, 6)
    )
    assert any("after the pump's refill due date" in w for w in warnings)
    _, warnings = services.schedule_appointment(
        pump=pump, actor=nurse, kind="refill", scheduled_for=at(2026, 4, 27, 9), now=at(2026, 1, 6)
    )
    assert warnings == []


@pytest.mark.django_db
def test_eight_percent_over_delivery_tightens_conservative_projection(pump, nurse):
    start = at(2026, 1, 5, 9)
    fill(pump, nurse, start)
    # 0.3 mL/day programmed; 8% over-delivery → 0.324 mL/day actually gone.
    for n in (1, 2):
        when = start + timedelta(days=60 * n)
        gone = D("0.324") * 60
        fill(pump, nurse, when, aspirated=str(D(40) - gone))
    projection = PumpProjection.objects.get(pump=pump)
    assert projection.delivery_ratio == D("1.0800")
    assert projection.conservative_factor == D("1.0800")
