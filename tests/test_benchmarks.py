"""The benchmark commands and the complexity they measure: query counts, never seconds."""

from datetime import timedelta
from io import StringIO

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from alerts import engine
from alerts.models import Alert, Notification
from clinics.calendar import calendar_of
from clinics.models import Clinic
from patients import benchdata, depletion, services
from patients.models import Patient, Pump, PumpProjection

from .factories import PatientFactory, PumpFactory

PROJECT_APPS = ("clinics", "patients", "alerts", "auth")


def row_counts() -> dict[str, int]:
    """Rows of every model of the project (history tables included) and of auth."""
    return {
        model._meta.label: model._default_manager.count()
        for label in PROJECT_APPS
        for model in apps.get_app_config(label).get_models()
    }


def bench_clinic(*, staff_email=False):
    return benchdata.create_clinic(benchdata.run_tag(), staff_email=staff_email)


def pumps_with_history(bench, now, count, refills, first_index=0) -> list[Pump]:
    before = set(Pump.objects.filter(patient__clinic=bench.clinic).values_list("pk", flat=True))
    benchdata.build_pumps(
        bench, count, benchdata.refill_history_adder(bench, now, refills), first_index=first_index, batch=7
    )
    return list(
        Pump.objects.filter(patient__clinic=bench.clinic)
        .exclude(pk__in=before)
        .select_related("pump_model", "patient", "patient__clinic")
    )


def queries_of(function, *args) -> int:
    with CaptureQueriesContext(connection) as captured:
        function(*args)
    return len(captured)


# --- the commands ------------------------------------------------------------------------------


def test_benchmark_projection_prints_its_figures_and_keeps_nothing(db):
    before = row_counts()
    out = StringIO()
    call_command("benchmark_projection", pumps=20, refills=3, stdout=out)
    printed = out.getvalue()
    print(printed)
    assert "20 synthetic pumps, 3 refills each" in printed
    assert printed.count("pumps/s") == 2
    assert "queries/pump" in printed
    assert "1 × SELECT patients_refillvisit" in printed
    assert "Rolled back: nothing of this run was kept." in printed
    assert row_counts() == before


def test_benchmark_projection_keeps_its_clinic_only_when_asked(db):
    call_command("benchmark_projection", pumps=3, refills=2, keep=True, stdout=StringIO())
    clinic = Clinic.objects.get(name__startswith=benchdata.CLINIC_NAME)
    assert Pump.objects.filter(patient__clinic=clinic).count() == 3
    assert PumpProjection.objects.filter(pump__patient__clinic=clinic).count() == 3


def test_benchmark_scan_prints_its_figures_and_keeps_nothing(db):
    before = row_counts()
    out = StringIO()
    call_command("benchmark_scan", sizes="50,200", stdout=out)
    printed = out.getvalue()
    print(printed)
    assert "50 synthetic pumps, 3 at risk" in printed
    assert "200 synthetic pumps, 3 at risk" in printed
    assert printed.count("\n  first scan ") == 2
    assert printed.count("\n  at rest ") == 2
    assert "the scan was not at rest" not in printed
    assert "No broker is touched" in printed
    assert "Ratios to 50 pumps" in printed
    assert row_counts() == before


def test_benchmark_scan_refuses_a_live_database_with_debug_off(db, settings):
    settings.DEBUG = False
    PumpFactory()
    with pytest.raises(CommandError, match="pumps in service"):
        call_command("benchmark_scan", sizes="5", stdout=StringIO())


# --- the synthetic data ------------------------------------------------------------------------


def test_synthetic_records_say_they_are_synthetic(db):
    bench = bench_clinic(staff_email=True)
    pumps_with_history(bench, timezone.now(), 3, refills=2)
    assert bench.name.startswith("Benchmark Clinic (synthetic) ")
    assert set(Patient.objects.filter(clinic=bench.clinic).values_list("mrn", flat=True)) == {
        "BENCH-000001",
        "BENCH-000002",
        "BENCH-000003",
    }
    assert set(Patient.objects.filter(clinic=bench.clinic).values_list("given_name", flat=True)) == {"Synthetic"}
    assert all(user.email.endswith("@example.invalid") for user in bench.staff.values())
    assert all(not user.has_usable_password() for user in bench.staff.values())


def test_a_shifted_template_is_the_projection_of_the_shifted_fill(db):
    bench = bench_clinic()
    now = timezone.now().replace(microsecond=0)
    template = benchdata.projection_template(bench, now, high_risk=False)
    pump = PumpFactory(patient=PatientFactory(clinic=bench.clinic))
    ratio = max(benchdata.measured_ratio(i) for i in range(20))  # 1.05: as high as the synthetic ratios go
    for state, days in template.days_in_state.items():
        for days_ago in (days[0], days[-1]):
            row = benchdata.shifted_projection(pump, template, days_ago, now, ratio)
            filled_at = now - timedelta(days=days_ago)
            rate = template.projection.rate_ml_per_day
            fill = depletion.Fill(filled_at, benchdata.VOLUME_ML, (depletion.Segment(filled_at, rate),))
            expected = depletion.project(
                fill,
                lra_ml=pump.lra_ml,
                max_days_in_pump=bench.drug_product.max_days_in_pump,
                vial_expires_on=None,
                zone=bench.clinic.zone,
                overinfusion_allowance_pct=bench.clinic.overinfusion_allowance_pct,
                margin=bench.clinic.refill_margin_days,
                reminder_days=bench.clinic.reminder_days,
                critical_hours=bench.clinic.critical_hours,
                now=now,
                measured_delivery_ratio=ratio,
                is_closed=calendar_of(bench.clinic),
            )
            fields = ("lra_at", "empty_at", "conservative_lra_at", "drug_expires_at", "refill_due_on")
            for name in (*fields, "unmoved_refill_due_on"):
                assert getattr(row, name) == getattr(expected, name), (state, days_ago, name)
            for name in ("critical_from", "overdue_from", "due_soon_from"):
                assert getattr(row, name) == getattr(expected, name), (state, days_ago, name)
            assert row.status_at(now) == state == expected.status(now)


def test_the_at_risk_plan_spreads_about_the_fraction_over_the_three_states():
    plan = benchdata.at_risk_plan(100_000, 0.01)
    assert len(plan) == 1000
    assert sorted(set(plan.values())) == sorted(benchdata.AT_RISK_STATES)
    assert benchdata.at_risk_plan(50, 0.01).keys() == {0, 16, 33}
    assert benchdata.at_risk_plan(50, 0) == {}


# --- complexity ----------------------------------------------------------------------------------


def test_projecting_one_pump_costs_the_same_queries_whatever_its_history_and_the_other_pumps(db):
    bench = bench_clinic()
    now = timezone.now().replace(microsecond=0)
    short = pumps_with_history(bench, now, 2, refills=1)
    long = pumps_with_history(bench, now, 2, refills=10, first_index=2)
    first_time = [queries_of(services.recompute_projection, pump, now) for pump in short + long]
    again = [queries_of(services.recompute_projection, pump, now) for pump in short + long]

    pumps_with_history(bench, now, 40, refills=4, first_index=4)  # many more pumps in the clinic
    with_more_pumps = [queries_of(services.recompute_projection, pump, now) for pump in short + long]

    assert len(set(first_time)) == 1, first_time  # storing a new projection
    assert len(set(again)) == 1, again  # updating it, as a refill does
    assert with_more_pumps == again
    assert again[0] <= 6


def at_rest_scan_queries(size: int) -> tuple[int, dict]:
    """Build ``size`` synthetic pumps (about 1 % at risk), scan until the alerts are raised and
    notified, then count the queries of the next scan; all rolled back."""
    now = timezone.now().replace(microsecond=0)
    with transaction.atomic():
        bench = bench_clinic(staff_email=True)
        plan = benchdata.at_risk_plan(size, 0.01)
        benchdata.build_pumps(bench, size, benchdata.projection_adder(bench, now, plan), batch=100)
        first = engine.run_scan(now)
        assert first["raised"] == len(plan)
        assert Notification.objects.filter(alert__clinic=bench.clinic).exists()
        with CaptureQueriesContext(connection) as captured:
            summary = engine.run_scan(now + timedelta(minutes=1))
        assert Alert.objects.open().filter(clinic=bench.clinic).count() == len(plan)
        transaction.set_rollback(True)
    return len(captured), summary


def test_a_scan_at_rest_makes_the_same_queries_at_50_and_500_pumps(db):
    small, small_summary = at_rest_scan_queries(50)
    large, large_summary = at_rest_scan_queries(500)
    assert small_summary == large_summary == dict.fromkeys(small_summary, 0)
    assert small == large


# --- benchmark_pages ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_every_main_page_makes_the_same_queries_for_a_small_and_a_larger_clinic():
    from alerts.management.commands.benchmark_pages import measure_size

    before = row_counts()
    small_login, small = measure_size(4, requests=1)
    large_login, large = measure_size(40, requests=1)
    assert row_counts() == before  # each size rolled back
    assert [p.name for p in small] == [
        "worklist",
        "pump page",
        "refill form",
        "patient page",
        "schedule",
        "inbox",
        "alert page",
        "status fragment",
    ]
    assert {p.status for p in small + large + [small_login, large_login]} == {200}
    assert {p.name: p.queries for p in large} == {p.name: p.queries for p in small}
    assert small_login.queries == large_login.queries == 0


@pytest.mark.django_db
def test_the_pages_benchmark_prints_times_queries_and_ratios():
    out = StringIO()
    call_command("benchmark_pages", "--sizes", "4,8", "--requests", "1", stdout=out)
    text = out.getvalue()
    assert "4 pumps: login page" in text and "8 pumps: login page" in text
    assert "status fragment" in text and "× login" in text
    assert "8 against 4 pumps" in text and "same queries" in text
