"""Refills, amendments and dose programs through the API: the worked example, and every refusal
of DESIGN.md's contract answering 400 on its field and storing nothing."""

from decimal import Decimal as D

import pytest

from clinics.models import Role
from patients.models import Program, PumpProjection, RefillVisit

from .factories import PatientFactory, PumpFactory, clinic_physician, drug_product, member, pump_model
from .test_api_helpers import (
    client_for,
    clock,
    fill_worked_example,
    first_fill,
    make_pump,
    post_refill,
    url,
)


@pytest.fixture
def pump(clinic):
    return make_pump(clinic)


@pytest.fixture
def filled_pump(pump, nurse):
    return fill_worked_example(pump, nurse)


@pytest.fixture
def other_pump(other_clinic):
    return make_pump(other_clinic)


SECOND_REFILL_AT = "2026-04-20T09:00:00-07:00"


def counts():
    return RefillVisit.objects.count(), Program.objects.count()


def assert_refused(response, field, before):
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()
    assert counts() == before


def second_refill(**overrides):
    """The worked example's next refill: 8.5 mL expected and aspirated, refilled to 40 mL."""
    return first_fill(**{"performed_at": SECOND_REFILL_AT, "aspirated_ml": 8.5, **overrides})


# --- the worked example ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_worked_example_through_the_api(pump, nurse):
    response = post_refill(nurse, pump, first_fill(drug_product=drug_product("2000").pk))
    assert response.status_code == 201
    visit = response.json()
    assert visit["performed_at"] == "2026-01-05T09:00:00-07:00"
    assert visit["expected_residual_ml"] is None
    assert visit["discrepancy"] is False
    assert visit["volume_added_ml"] == 40
    assert visit["daily_dose_mcg"] == 600

    with clock("2026-01-06T09:00:00-07:00"):
        projection = client_for(nurse).get(url("api-pump-projection", pump.pk)).json()
    assert projection == {
        "reservoir_ml": 39.7,
        "lra_at": "2026-05-12T01:00:00-07:00",
        "empty_at": "2026-05-18T17:00:00-07:00",
        "conservative_lra_at": "2026-05-06T00:14:17-07:00",
        "drug_expires_at": "2026-07-04T09:00:00-07:00",
        "refill_due_on": "2026-04-29",
        "unmoved_refill_due_on": "2026-04-29",
        "end_of_service_on": None,  # no ERI date known
        "status": "ok",
    }

    response = post_refill(nurse, pump, second_refill(), now="2026-04-20T09:30:00-07:00")
    assert response.status_code == 201, response.json()
    assert response.json()["expected_residual_ml"] == 8.5
    assert response.json()["discrepancy"] is False


@pytest.mark.django_db
def test_refill_response_carries_every_contract_field(pump, nurse):
    body = first_fill(drug_product=drug_product("2000").pk, drug_lot="L123", drug_expires_on="2026-12-31")
    visit = post_refill(nurse, pump, {**body, "performed_elsewhere": "St Elsewhere ward 3"}).json()
    assert {
        "id",
        "pump",
        "performed_at",
        "expected_residual_ml",
        "aspirated_ml",
        "volume_added_ml",
        "concentration_mcg_per_ml",
        "daily_dose_mcg",
        "bolus_mcg_per_day",
        "discrepancy",
        "discrepancy_reason",
        "drug_product",
        "drug_lot",
        "drug_expires_on",
        "performed_elsewhere",
        "amended_at",
        "amend_reason",
    } <= set(visit)
    assert visit["pump"] == pump.pk
    assert visit["drug_lot"] == "L123"
    assert visit["drug_expires_on"] == "2026-12-31"
    assert visit["performed_elsewhere"] == "St Elsewhere ward 3"
    assert visit["amended_at"] is None
    assert RefillVisit.objects.get(pk=visit["id"]).performed_by == nurse


@pytest.mark.django_db
def test_times_answer_in_the_clinics_zone_whatever_offset_was_sent(pump, nurse):
    response = post_refill(nurse, pump, first_fill(performed_at="2026-01-05T16:00:00Z"))
    assert response.json()["performed_at"] == "2026-01-05T09:00:00-07:00"


@pytest.mark.django_db
def test_projection_of_a_pump_never_filled_is_null(pump, nurse):
    response = client_for(nurse).get(url("api-pump-projection", pump.pk))
    assert response.status_code == 200
    assert response.content == b"null"


@pytest.mark.django_db
def test_projection_status_turns_due_soon_within_the_reminder_window(filled_pump, nurse):
    with clock("2026-04-15T08:00:00-07:00"):
        projection = client_for(nurse).get(url("api-pump-projection", filled_pump.pk)).json()
    assert projection["status"] == "due_soon"


# --- refusals of a refill --------------------------------------------------------------------------------

FIRST_FILL_REFUSALS = [
    ("refill_in_the_future", {"performed_at": "2026-01-05T09:36:00-07:00"}, "performed_at"),
    ("time_without_offset", {"performed_at": "2026-01-05T09:00:00"}, "performed_at"),
    ("date_without_time", {"performed_at": "2026-01-05"}, "performed_at"),
    ("nothing_added", {"volume_added_ml": 0}, "volume_added_ml"),
    ("negative_volume_added", {"volume_added_ml": -5}, "volume_added_ml"),
    ("overfill_above_reservoir", {"volume_added_ml": 40.01}, "volume_added_ml"),
    ("negative_aspirate", {"aspirated_ml": -0.5}, "aspirated_ml"),
    ("aspirate_above_reservoir", {"aspirated_ml": 41}, "aspirated_ml"),
    ("zero_concentration", {"concentration_mcg_per_ml": 0}, "concentration_mcg_per_ml"),
    ("negative_concentration", {"concentration_mcg_per_ml": -2000}, "concentration_mcg_per_ml"),
    ("negative_dose", {"daily_dose_mcg": -1}, "daily_dose_mcg"),
    ("dose_plus_bolus_above_hard_limit", {"daily_dose_mcg": 2500, "bolus_mcg_per_day": 600}, "daily_dose_mcg"),
    ("dose_above_hard_limit_even_confirmed", {"daily_dose_mcg": 3001, "dose_change_confirmed": True}, "daily_dose_mcg"),
    ("negative_bolus", {"bolus_mcg_per_day": -10}, "bolus_mcg_per_day"),
    ("first_fill_above_high_dose_unconfirmed", {"daily_dose_mcg": 1440}, "dose_change_confirmed"),
    ("zero_dose_without_stop_reason", {"daily_dose_mcg": 0}, "stop_reason"),
    ("compounded_without_beyond_use_date", {"concentration_mcg_per_ml": 1500}, "drug_expires_on"),
    ("drug_already_expired", {"drug_expires_on": "2026-01-05"}, "drug_expires_on"),
    ("product_of_other_strength", {"drug_product": "gablofen-500"}, "concentration_mcg_per_ml"),
    ("dose_as_text", {"daily_dose_mcg": "six hundred"}, "daily_dose_mcg"),
    ("dose_not_a_number", {"daily_dose_mcg": "NaN"}, "daily_dose_mcg"),
    ("dose_infinite", {"daily_dose_mcg": "Infinity"}, "daily_dose_mcg"),
    ("volume_with_three_decimals", {"volume_added_ml": 20.005}, "volume_added_ml"),
    ("confirmation_as_text", {"daily_dose_mcg": 1440, "dose_change_confirmed": "yes"}, "dose_change_confirmed"),
    ("unknown_drug_product", {"drug_product": 999999}, "drug_product"),
    ("mistyped_optional_field", {"drug_expiry": "2026-06-01"}, "drug_expiry"),
    ("programmable_pump_without_dose", {"daily_dose_mcg": None}, "daily_dose_mcg"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "field"), [c[1:] for c in FIRST_FILL_REFUSALS], ids=[c[0] for c in FIRST_FILL_REFUSALS]
)
def test_first_fill_refusals_answer_400_on_the_field_and_store_nothing(pump, nurse, overrides, field):
    if overrides.get("drug_product") == "gablofen-500":
        overrides = {**overrides, "drug_product": drug_product("500").pk}
    body = first_fill(**overrides)
    if "daily_dose_mcg" in overrides and overrides["daily_dose_mcg"] is None:
        body.pop("daily_dose_mcg", None)
    before = counts()
    assert_refused(post_refill(nurse, pump, body), field, before)
    assert not PumpProjection.objects.filter(pump=pump).exists()


@pytest.mark.django_db
def test_five_minutes_of_clock_skew_are_allowed(pump, nurse):
    assert post_refill(nurse, pump, first_fill(performed_at="2026-01-05T09:34:00-07:00")).status_code == 201


@pytest.mark.django_db
def test_high_first_dose_is_stored_once_confirmed(pump, nurse):
    response = post_refill(nurse, pump, first_fill(daily_dose_mcg=1440, dose_change_confirmed=True))
    assert response.status_code == 201
    assert response.json()["daily_dose_mcg"] == 1440


@pytest.mark.django_db
def test_compounded_concentration_is_stored_with_its_beyond_use_date(pump, nurse):
    response = post_refill(nurse, pump, first_fill(concentration_mcg_per_ml=1500, drug_expires_on="2026-02-15"))
    assert response.status_code == 201
    assert response.json()["drug_expires_on"] == "2026-02-15"
    assert PumpProjection.objects.get(pump=pump).drug_expires_at.isoformat() == "2026-02-15T07:00:00+00:00"


@pytest.mark.django_db
def test_zero_dose_for_mri_is_stored_with_its_reason(pump, nurse):
    response = post_refill(nurse, pump, first_fill(daily_dose_mcg=0, stop_reason="MRI: reservoir emptied"))
    assert response.status_code == 201
    assert response.json()["stop_reason"] == "MRI: reservoir emptied"
    with clock("2026-01-06T09:00:00-07:00"):
        assert client_for(nurse).get(url("api-pump-projection", pump.pk)).json()["status"] == "stopped"


@pytest.mark.django_db
def test_refill_at_the_same_time_as_the_previous_is_refused(filled_pump, nurse):
    before = counts()
    response = post_refill(nurse, filled_pump, first_fill(), now="2026-01-06T09:00:00-07:00")
    assert_refused(response, "performed_at", before)


@pytest.mark.django_db
def test_refill_before_the_previous_is_refused(filled_pump, nurse):
    before = counts()
    body = first_fill(performed_at="2026-01-04T09:00:00-07:00")
    assert_refused(post_refill(nurse, filled_pump, body, now="2026-01-06T09:00:00-07:00"), "performed_at", before)


@pytest.mark.django_db
def test_dose_increase_above_limit_needs_confirmation_at_refill(filled_pump, nurse):
    before = counts()
    physician = clinic_physician(filled_pump.patient.clinic)
    body = second_refill(daily_dose_mcg=750, ordered_by=physician.pk)  # +25 %
    response = post_refill(nurse, filled_pump, body, now="2026-04-20T09:30:00-07:00")
    assert_refused(response, "dose_change_confirmed", before)
    body["dose_change_confirmed"] = True
    assert post_refill(nurse, filled_pump, body, now="2026-04-20T09:30:00-07:00").status_code == 201


@pytest.mark.django_db
def test_nurse_refill_changing_the_dose_without_a_physician_is_400_on_ordered_by(filled_pump, nurse, superuser):
    before = counts()
    body = second_refill(daily_dose_mcg=650)
    assert_refused(post_refill(nurse, filled_pump, body, now="2026-04-20T09:30:00-07:00"), "ordered_by", before)
    body["ordered_by"] = superuser.pk  # a superuser is not a physician
    assert_refused(post_refill(nurse, filled_pump, body, now="2026-04-20T09:30:00-07:00"), "ordered_by", before)


@pytest.mark.django_db
def test_residual_out_of_tolerance_needs_a_reason_then_is_stored_as_discrepancy(filled_pump, nurse):
    before = counts()
    body = second_refill(aspirated_ml=3)  # 8.5 mL expected, tolerance 2 mL
    response = post_refill(nurse, filled_pump, body, now="2026-04-20T09:30:00-07:00")
    assert_refused(response, "discrepancy_reason", before)
    body["discrepancy_reason"] = "Possible over-infusion; physician informed."
    response = post_refill(nurse, filled_pump, body, now="2026-04-20T09:30:00-07:00")
    assert response.status_code == 201
    assert response.json()["discrepancy"] is True
    assert response.json()["expected_residual_ml"] == 8.5


@pytest.mark.django_db
def test_physician_records_a_refill(pump, physician):
    assert post_refill(physician, pump, first_fill()).status_code == 201


@pytest.mark.django_db
def test_clinic_admin_cannot_record_a_refill(pump, clinic_admin):
    before = counts()
    response = post_refill(clinic_admin, pump, first_fill())
    assert response.status_code == 403
    assert counts() == before


@pytest.mark.django_db
def test_refill_of_another_clinics_pump_is_not_found(other_pump, nurse):
    assert post_refill(nurse, other_pump, first_fill()).status_code == 404


@pytest.mark.django_db
def test_ordering_physician_of_another_clinic_is_refused_as_unknown(pump, nurse, other_clinic):
    stranger = member(other_clinic, Role.PHYSICIAN)
    before = counts()
    assert_refused(post_refill(nurse, pump, first_fill(ordered_by=stranger.pk)), "ordered_by", before)


@pytest.mark.django_db
def test_constant_flow_pump_takes_its_dose_from_the_flow_rate(clinic, nurse):
    codman = PumpFactory(
        patient=PatientFactory(clinic=clinic),
        pump_model=pump_model("3000 30 mL", "Codman"),
        flow_rate_ml_per_day=D("1"),
    )
    body = first_fill(volume_added_ml=30, concentration_mcg_per_ml=500, daily_dose_mcg=None)
    response = post_refill(nurse, codman, body)
    assert response.status_code == 201, response.json()
    assert response.json()["daily_dose_mcg"] == 500


# --- amendments ------------------------------------------------------------------------------------------------


def amend(user, refill_id, body, now="2026-01-06T09:00:00-07:00"):
    with clock(now):
        return client_for(user).patch(url("api-refill", refill_id), body, format="json")


@pytest.mark.django_db
def test_mistyped_refill_is_amended_with_a_reason_and_the_original_kept(filled_pump, nurse):
    refill = RefillVisit.objects.get(pump=filled_pump)
    response = amend(nurse, refill.pk, {"volume_added_ml": 38, "amend_reason": "Typed 40 for 38"})
    assert response.status_code == 200, response.json()
    assert response.json()["volume_added_ml"] == 38
    assert response.json()["amend_reason"] == "Typed 40 for 38"
    assert response.json()["amended_at"] == "2026-01-06T09:00:00-07:00"
    assert refill.history.count() == 2
    assert refill.history.earliest().volume_added_ml == D("40")
    assert PumpProjection.objects.get(pump=filled_pump).reservoir_at_fill_ml == D("38")


@pytest.mark.django_db
def test_amendment_without_a_reason_is_refused(filled_pump, nurse):
    refill = RefillVisit.objects.get(pump=filled_pump)
    for body in ({"volume_added_ml": 38}, {"volume_added_ml": 38, "amend_reason": "  "}):
        response = amend(nurse, refill.pk, body)
        assert response.status_code == 400
        assert "amend_reason" in response.json()
    refill.refresh_from_db()
    assert refill.volume_added_ml == D("40")
    assert refill.amended_at is None


@pytest.mark.django_db
def test_a_long_amendment_reason_is_kept_in_full(filled_pump, nurse):
    refill = RefillVisit.objects.get(pump=filled_pump)
    reason = "Volume typed from the wrong line of the pump printout; corrected from the paper record. " * 3
    response = amend(nurse, refill.pk, {"volume_added_ml": 38, "amend_reason": reason})
    assert response.status_code == 200, response.content
    refill.refresh_from_db()
    assert refill.amend_reason == reason.strip()


@pytest.mark.django_db
def test_amendment_is_held_to_the_refill_rules(filled_pump, nurse):
    refill = RefillVisit.objects.get(pump=filled_pump)
    response = amend(nurse, refill.pk, {"volume_added_ml": 45, "amend_reason": "Correction"})
    assert response.status_code == 400
    assert "volume_added_ml" in response.json()
    refill.refresh_from_db()
    assert refill.volume_added_ml == D("40")


@pytest.mark.django_db
def test_amending_another_clinics_refill_is_not_found(filled_pump, other_clinic):
    stranger = member(other_clinic, Role.NURSE)
    refill = RefillVisit.objects.get(pump=filled_pump)
    assert amend(stranger, refill.pk, {"volume_added_ml": 38, "amend_reason": "x"}).status_code == 404


@pytest.mark.django_db
def test_clinic_admin_cannot_amend_a_refill(filled_pump, clinic_admin):
    refill = RefillVisit.objects.get(pump=filled_pump)
    assert amend(clinic_admin, refill.pk, {"volume_added_ml": 38, "amend_reason": "x"}).status_code == 403


# --- programs ---------------------------------------------------------------------------------------------------


def reprogram(user, pump, body, now="2026-02-01T10:00:00-07:00"):
    with clock(now):
        return client_for(user).post(url("api-pump-programs", pump.pk), body, format="json")


@pytest.mark.django_db
def test_physician_lowers_the_dose_and_the_due_date_moves_later(filled_pump, physician):
    due_before = PumpProjection.objects.get(pump=filled_pump).refill_due_on
    response = reprogram(physician, filled_pump, {"effective_at": "2026-02-01T09:00:00-07:00", "daily_dose_mcg": 500})
    assert response.status_code == 201, response.json()
    program = response.json()
    assert program["daily_dose_mcg"] == 500
    assert program["concentration_mcg_per_ml"] == 2000
    assert program["effective_at"] == "2026-02-01T09:00:00-07:00"
    assert program["entered_by"] == physician.pk
    assert PumpProjection.objects.get(pump=filled_pump).refill_due_on > due_before


@pytest.mark.django_db
def test_nurse_changes_a_dose_naming_the_ordering_physician(filled_pump, nurse, physician):
    body = {"effective_at": "2026-02-01T09:00:00-07:00", "daily_dose_mcg": 550}
    before = counts()
    assert_refused(reprogram(nurse, filled_pump, body), "ordered_by", before)
    response = reprogram(nurse, filled_pump, {**body, "ordered_by": physician.pk})
    assert response.status_code == 201
    assert response.json()["ordered_by"] == physician.pk


PROGRAM_REFUSALS = [
    ("effective_before_last_refill", {"effective_at": "2026-01-04T09:00:00-07:00"}, "effective_at"),
    ("effective_without_offset", {"effective_at": "2026-02-01T09:00:00"}, "effective_at"),
    ("effective_in_the_future", {"effective_at": "2026-02-02T09:00:00-07:00"}, "effective_at"),
    ("dose_change_above_limit_unconfirmed", {"daily_dose_mcg": 800}, "dose_change_confirmed"),
    ("high_dose_unconfirmed", {"daily_dose_mcg": 1100, "dose_change_confirmed": False}, "dose_change_confirmed"),
    ("zero_dose_without_stop_reason", {"daily_dose_mcg": 0}, "stop_reason"),
    ("dose_plus_bolus_above_hard_limit", {"daily_dose_mcg": 2000, "bolus_mcg_per_day": 1001}, "daily_dose_mcg"),
    ("negative_dose", {"daily_dose_mcg": -600}, "daily_dose_mcg"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "field"), [c[1:] for c in PROGRAM_REFUSALS], ids=[c[0] for c in PROGRAM_REFUSALS]
)
def test_program_refusals_answer_400_on_the_field_and_store_nothing(filled_pump, physician, overrides, field):
    body = {"effective_at": "2026-02-01T09:00:00-07:00", "daily_dose_mcg": 600, **overrides}
    before = counts()
    assert_refused(reprogram(physician, filled_pump, body), field, before)


@pytest.mark.django_db
def test_large_dose_change_is_stored_once_confirmed(filled_pump, physician):
    body = {"effective_at": "2026-02-01T09:00:00-07:00", "daily_dose_mcg": 800, "dose_change_confirmed": True}
    assert reprogram(physician, filled_pump, body).status_code == 201


@pytest.mark.django_db
def test_clinic_admin_cannot_change_a_program(filled_pump, clinic_admin):
    before = counts()
    body = {"effective_at": "2026-02-01T09:00:00-07:00", "daily_dose_mcg": 550}
    assert reprogram(clinic_admin, filled_pump, body).status_code == 403
    assert counts() == before


@pytest.mark.django_db
def test_program_for_another_clinics_pump_is_not_found(other_pump, physician):
    body = {"effective_at": "2026-02-01T09:00:00-07:00", "daily_dose_mcg": 550}
    assert reprogram(physician, other_pump, body).status_code == 404
