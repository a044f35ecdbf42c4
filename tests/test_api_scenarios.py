"""CLINICAL.md's scenario table through the REST API, each checked against the pure projection core."""

from datetime import datetime, timedelta
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
import time_machine
from rest_framework.test import APIClient

from clinics.models import Role
from patients import depletion
from patients.models import PumpModel

from .factories import ClinicFactory, PatientFactory, PumpFactory, member

PHX = ZoneInfo("America/Phoenix")
NYC = ZoneInfo("America/New_York")
T0 = datetime(2026, 1, 5, 9, tzinfo=PHX)


@pytest.fixture
def api(clinic):
    client = APIClient()
    client.force_authenticate(member(clinic, Role.PHYSICIAN, username="dr-api"))
    return client


def make_pump(clinic, model="SynchroMed II 40 mL", **fields):
    patient_fields = fields.pop("patient", {})
    model = PumpModel.objects.get(name=model)
    return PumpFactory(patient=PatientFactory(clinic=clinic, **patient_fields), pump_model=model, **fields)


def post(api, url, body, now, expect=201):
    with time_machine.travel(now, tick=False):
        response = api.post(url, body, format="json")
    assert response.status_code == expect, response.content
    return response.json()


def refill(api, pump, when, volume="40", dose="600", concentration="2000", aspirated="0", **extra):
    body = {
        "performed_at": when.isoformat(),
        "aspirated_ml": aspirated,
        "volume_added_ml": volume,
        "concentration_mcg_per_ml": concentration,
        "daily_dose_mcg": dose,
        "dose_change_confirmed": True,
        **extra,
    }
    return post(api, f"/api/v1/pumps/{pump.pk}/refills/", body, when + timedelta(minutes=1))


def projection(api, pump, now):
    with time_machine.travel(now, tick=False):
        response = api.get(f"/api/v1/pumps/{pump.pk}/projection/")
    assert response.status_code == 200
    return response.json()


def iso(value, zone=PHX):
    return None if value is None else value.astimezone(zone).isoformat()


def expected(fill, *, zone=PHX, lra="2", days=180, vial=None, margin=7, allowance="5", ratio=None):
    return depletion.project(
        fill,
        lra_ml=D(lra),
        max_days_in_pump=days,
        vial_expires_on=vial,
        zone=zone,
        overinfusion_allowance_pct=D(allowance),
        margin=margin,
        reminder_days=14,
        critical_hours=48,
        now=fill.filled_at,
        measured_delivery_ratio=ratio,
        is_closed=lambda day: day.weekday() >= 5,  # the clinic's default calendar: closed at weekends
    )


def seg(start, dose, concentration="2000", bolus="0"):
    return depletion.Segment(start, depletion.rate_ml_per_day(D(dose), D(bolus), D(concentration)))


def assert_matches(got, want, zone=PHX):
    assert got["lra_at"] == iso(want.lra_at, zone)
    assert got["empty_at"] == iso(want.empty_at, zone)
    assert got["conservative_lra_at"] == iso(want.conservative_lra_at, zone)
    assert got["drug_expires_at"] == iso(want.drug_expires_at, zone)
    assert got["refill_due_on"] == want.refill_due_on.isoformat()


@pytest.mark.django_db
def test_worked_example_through_the_api(api, clinic):
    pump = make_pump(clinic)
    refill(api, pump, T0)
    got = projection(api, pump, T0 + timedelta(days=1))
    assert got["lra_at"] == "2026-05-12T01:00:00-07:00"
    assert got["empty_at"] == "2026-05-18T17:00:00-07:00"
    assert got["conservative_lra_at"] == "2026-05-06T00:14:17-07:00"
    assert got["drug_expires_at"] == "2026-07-04T09:00:00-07:00"
    assert got["refill_due_on"] == "2026-04-29"
    assert got["status"] == "ok"
    visit = refill(api, pump, datetime(2026, 4, 20, 9, tzinfo=PHX), aspirated="8.5")
    assert visit["expected_residual_ml"] == 8.5 and visit["discrepancy"] is False


@pytest.mark.django_db
def test_dose_increase_mid_cycle_moves_alarm_earlier(api, clinic):
    pump = make_pump(clinic)
    refill(api, pump, T0)
    change = T0 + timedelta(days=30)
    post(
        api, f"/api/v1/pumps/{pump.pk}/programs/", {"effective_at": change.isoformat(), "daily_dose_mcg": "700"}, change
    )
    want = expected(depletion.Fill(T0, D(40), (seg(T0, "600"), seg(change, "700"))))
    got = projection(api, pump, change + timedelta(hours=1))
    assert_matches(got, want)
    assert got["refill_due_on"] < "2026-04-29"


@pytest.mark.django_db
def test_concentration_change_at_refill(api, clinic):
    pump = make_pump(clinic)
    refill(api, pump, T0)
    second = datetime(2026, 4, 20, 9, tzinfo=PHX)
    refill(api, pump, second, aspirated="8.5", concentration="1000", dose="600")
    assert_matches(
        projection(api, pump, second), expected(depletion.Fill(second, D(40), (seg(second, "600", "1000"),)))
    )


@pytest.mark.django_db
def test_bolus_allowance_counts_as_consumption(api, clinic):
    pump = make_pump(clinic)
    refill(api, pump, T0, bolus_mcg_per_day="100")
    assert_matches(projection(api, pump, T0), expected(depletion.Fill(T0, D(40), (seg(T0, "600", bolus="100"),))))


@pytest.mark.django_db
def test_low_dose_pump_is_bounded_by_drug_expiry(api, clinic):
    pump = make_pump(clinic)
    refill(api, pump, T0, dose="90")
    got = projection(api, pump, T0)
    assert got["drug_expires_at"] == "2026-07-04T09:00:00-07:00"
    assert got["unmoved_refill_due_on"] == "2026-06-27"  # a Saturday:
    assert got["refill_due_on"] == "2026-06-26"


@pytest.mark.django_db
def test_compounded_drug_expires_at_start_of_its_beyond_use_date(api, clinic):
    pump = make_pump(clinic)
    refill(api, pump, T0, concentration="1500", drug_expires_on="2026-02-15")
    got = projection(api, pump, T0)
    assert got["drug_expires_at"] == "2026-02-15T00:00:00-07:00"
    assert got["unmoved_refill_due_on"] == "2026-02-08"  # a Sunday:
    assert got["refill_due_on"] == "2026-02-06"


@pytest.mark.django_db
def test_stopped_pump_never_reaches_its_alarm(api, clinic):
    pump = make_pump(clinic)
    refill(api, pump, T0)
    stop = T0 + timedelta(days=3)
    post(
        api,
        f"/api/v1/pumps/{pump.pk}/programs/",
        {"effective_at": stop.isoformat(), "daily_dose_mcg": "0", "stop_reason": "MRI: reservoir emptied"},
        stop,
    )
    got = projection(api, pump, stop + timedelta(hours=1))
    assert (got["lra_at"], got["empty_at"], got["conservative_lra_at"], got["status"]) == (None, None, None, "stopped")
    assert got["refill_due_on"] == "2026-06-26"  # drug expiry 07-04 − 7 days: Saturday 06-27, moved


@pytest.mark.django_db
def test_constant_flow_pump_uses_its_own_flow_rate(api, clinic):
    pump = make_pump(clinic, model="3000 30 mL", lra_ml=D("2"), flow_rate_ml_per_day=D("0.25"))
    visit = refill(api, pump, T0, volume="30", concentration="1000", dose="250")
    assert visit["daily_dose_mcg"] == 250
    flow = depletion.Fill(T0, D(30), (depletion.Segment(T0, D("0.25")),))
    assert_matches(projection(api, pump, T0), expected(flow))


@pytest.mark.django_db
def test_refill_late_after_empty_expects_nothing_left(api, clinic):
    pump = make_pump(clinic)
    refill(api, pump, T0)
    visit = refill(api, pump, datetime(2026, 6, 1, 9, tzinfo=PHX), aspirated="0")
    assert visit["expected_residual_ml"] == 0 and visit["discrepancy"] is False


@pytest.mark.django_db
def test_alarm_threshold_above_the_fill_is_reached_at_once(api, clinic):
    pump = make_pump(clinic, lra_ml=D("4"))
    refill(api, pump, T0, volume="3")
    got = projection(api, pump, T0 + timedelta(minutes=5))
    assert got["lra_at"] == got["conservative_lra_at"] == "2026-01-05T09:00:00-07:00"
    assert got["status"] == "critical"


@pytest.mark.django_db
def test_pump_over_delivering_eight_percent_gets_an_earlier_conservative_alarm(api, clinic):
    pump = make_pump(clinic)
    refill(api, pump, T0)
    fills = [T0]
    for n in (1, 2):
        when = T0 + timedelta(days=60 * n)
        refill(api, pump, when, aspirated=str((D(40) - D("0.324") * 60).quantize(D("0.01"))))
        fills.append(when)
    last = fills[-1]
    want = expected(depletion.Fill(last, D(40), (seg(last, "600"),)), ratio=D("1.08"))
    assert_matches(projection(api, pump, last), want)


@pytest.mark.django_db
def test_high_risk_patient_gets_the_wider_margin(api, clinic):
    pump = make_pump(clinic, patient={"sci_at_or_above_t6": True, "extra_margin_days": 2})
    refill(api, pump, T0)
    assert projection(api, pump, T0)["refill_due_on"] == "2026-04-24"  # 04-29 − 3 high-risk − 2 own days


@pytest.mark.django_db
def test_clinic_across_daylight_saving_change(api):
    clinic = ClinicFactory(name="Eastern Clinic", timezone="America/New_York")
    client = APIClient()
    client.force_authenticate(member(clinic, Role.PHYSICIAN))
    pump = make_pump(clinic)
    filled = datetime(2026, 2, 1, 9, tzinfo=NYC)
    refill(client, pump, filled)
    got = projection(client, pump, filled)
    want = expected(depletion.Fill(filled, D(40), (seg(filled, "600"),)), zone=NYC)
    assert_matches(got, want, NYC)
    # 126.67 days of elapsed time cross the March change: the alarm reads 02:00 EDT, not 01:00.
    assert got["lra_at"] == "2026-06-08T02:00:00-04:00"


@pytest.mark.django_db
def test_amended_refill_moves_the_projection(api, clinic):
    pump = make_pump(clinic)
    visit = refill(api, pump, T0, volume="20")
    with time_machine.travel(T0 + timedelta(days=1), tick=False):
        response = api.patch(
            f"/api/v1/refills/{visit['id']}/",
            {"volume_added_ml": "40", "amend_reason": "Typed 20, filled 40"},
            format="json",
        )
    assert response.status_code == 200, response.content
    assert_matches(
        projection(api, pump, T0 + timedelta(days=1)), expected(depletion.Fill(T0, D(40), (seg(T0, "600"),)))
    )
