"""The clinic report's figures (issue 14), each against a small hand-computed fixture.

The fixture clinic is in America/New_York, open every day but one closure (Wed 2026-10-28), with
the default margin (7 days), over-infusion allowance (5 %) and drift threshold (1.10). The report's
period is 2026-10-20 – 2026-11-19: daylight saving ends on Sun 2026-11-01, so its bounds are
2026-10-20 04:00 UTC (00:00 EDT) to 2026-11-20 05:00 UTC (00:00 EST), 31 days and 1 hour.

Every fill is 23 mL of 500 mcg/mL at 500 mcg/day: 1 mL/day. With the SynchroMed II 40 mL's 2 mL
alarm threshold a fill reaches its nominal alarm 21 days after it (23 − 2 = 21 mL), runs empty
after 23 days, and reaches the conservative alarm after 21 / 1.05 = 20 days; so the due date is
the clinic date of fill + 20 days, minus 7 days (then moved off a closed day). Elapsed times are
in UTC: a fill at 13:00 UTC is at 09:00 EDT before 1 November and 08:00 EST after.

Pumps (all implanted 2025-06-01, patients active):
  A  A0 Thu 10-10 13:00Z (first fill, by the physician)
        → alarm 10-31 13:00Z, empty 11-02 13:00Z, conservative 10-30 13:00Z (09:00 EDT), due 10-23
     A1 Fri 10-23 14:00Z (10:00 EDT) by the nurse: ON TIME (10-23 ≤ 10-23);
        margin = 10-31 13:00Z − 10-23 14:00Z = 7 d 23 h = 7.9583 d; then AMENDED (aspirated
        10.00 → 9.50 mL, a note): its snapshot does not change
        → its own fill runs empty 11-15 14:00Z (no refill after it)
  B  B0 Thu 10-01 13:00Z → alarm 10-22 13:00Z, empty 10-24 13:00Z, due 10-14
     B1 Mon 10-26 13:00Z by the physician: LATE; after the alarm AND after the projected EMPTY
        reservoir; margin = 10-22 13:00Z − 10-26 13:00Z = −4 d
        → its own fill runs empty 11-18 13:00Z
  C  C0 Thu 10-15 13:00Z → conservative 11-04 13:00Z (08:00 EST), unmoved due Wed 10-28, a CLOSED
        day: due MOVED to Tue 10-27
     C1 Wed 10-28 14:00Z by the nurse: LATE (10-28 > 10-27; it would have been on time by the
        unmoved date); alarm 11-05 13:00Z: margin 7 d 23 h = 7.9583 d; aspirated 5 mL where
        ≈ 9.96 were expected: a residual DISCREPANCY
     EXPLANTED Thu 11-05 (mid-period): its projection goes, so its current fill adds no empty day
  D  never filled, explanted 2026-10-12 (before the period): not in service in the period
"""

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.apps import apps as live_apps
from django.db import connection
from django.test.utils import CaptureQueriesContext

from alerts.models import Alert, AlertEvent, AlertKind, Channel, Notification, ReviewConclusion, Severity
from alerts.services import conclude_review
from clinics.models import ClinicClosure, Membership, Role, Rotation
from patients import services
from patients.models import Appointment, Pump, PumpProjection, RefillVisit
from reports.figures import SPECS, LateRefill, Period, clinic_report, monthly_trend, percentile
from tests.factories import ClinicFactory, PatientFactory, PumpFactory, drug_product, member

pytestmark = pytest.mark.django_db

NEW_YORK = ZoneInfo("America/New_York")
PERIOD = Period.between(date(2026, 10, 20), date(2026, 11, 19))
NOW = datetime(2026, 12, 1, 17, tzinfo=UTC)


def at(month, day, hour, minute=0):
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def _refill(pump, actor, performed_at, aspirated, **extra):
    return services.record_refill(
        pump=pump,
        actor=actor,
        performed_at=performed_at,
        aspirated_ml=Decimal(aspirated),
        volume_added_ml=Decimal(23),
        concentration_mcg_per_ml=Decimal(500),
        daily_dose_mcg=Decimal(500),
        drug_product=drug_product(500),
        now=performed_at + timedelta(minutes=5),
        **extra,
    )


def _pump(clinic, **fields):
    return PumpFactory(patient=PatientFactory(clinic=clinic), implanted_on=date(2025, 6, 1), **fields)


def build_clinic(extra_pumps: int = 0):
    """The fixture above; ``extra_pumps`` more pumps like A (for the query-count test)."""
    clinic = ClinicFactory(timezone="America/New_York", opening_weekdays=[0, 1, 2, 3, 4, 5, 6])
    ClinicClosure.objects.create(
        clinic=clinic, first_day=date(2026, 10, 28), last_day=date(2026, 10, 28), reason="Staff training"
    )
    physician = member(clinic, Role.PHYSICIAN, first_name="Paula", last_name="Physician")
    nurse = member(clinic, Role.NURSE, first_name="Nora", last_name="Nurse")
    away = member(clinic, Role.NURSE, first_name="Otto", last_name="Away")
    a, b, c = _pump(clinic, eri_on=date(2027, 5, 1)), _pump(clinic, eri_on=date(2027, 5, 1)), _pump(clinic)
    _pump(clinic, status=Pump.Status.EXPLANTED, explanted_on=date(2026, 10, 12))
    refills = {}
    with time_machine.travel(at(10, 1, 12), tick=False):
        refills["A0"] = _refill(a, physician, at(10, 10, 13), 0)
        refills["B0"] = _refill(b, physician, at(10, 1, 13), 0)
        refills["C0"] = _refill(c, physician, at(10, 15, 13), 0)
        refills["A1"] = _refill(a, nurse, at(10, 23, 14), "10.00")
        refills["B1"] = _refill(b, physician, at(10, 26, 13), 0)
        refills["C1"] = _refill(c, nurse, at(10, 28, 14), 5, discrepancy_reason="Pocket fill suspected")
        services.amend_refill(
            refill=refills["A1"],
            actor=nurse,
            amend_reason="Aspirated volume misread",
            aspirated_ml=Decimal("9.50"),
            notes="Re-read the syringe",
            now=at(10, 24, 12),
        )
        services.explant_pump(
            pump=c, actor=physician, explanted_on=date(2026, 11, 5), reason="infection", now=at(11, 5, 18)
        )
        for index in range(extra_pumps):
            extra = _pump(clinic)
            _refill(extra, physician, at(10, 10, 13) + timedelta(minutes=index), 0)
            _refill(extra, nurse, at(10, 23, 14) + timedelta(minutes=index), "10.00")

    # Alerting: only the alerts below (the ones the refills raised are removed, so the hand
    # computation covers every row).
    Notification.objects.all().delete()
    AlertEvent.objects.all().delete()
    Alert.objects.all().delete()

    def alert(pump, kind, severity, raised_at, acknowledged=None, resolved=None):
        return Alert.objects.create(
            clinic=clinic,
            pump=pump,
            kind=kind,
            severity=severity,
            dedupe_key=f"{kind}:{pump.pk}:{raised_at.timestamp()}",
            status=Alert.Status.RESOLVED if resolved is not None else Alert.Status.TRIGGERED,
            raised_at=raised_at,
            acknowledged_at=None if acknowledged is None else raised_at + timedelta(minutes=acknowledged),
            resolved_at=None if resolved is None else raised_at + timedelta(minutes=resolved),
        )

    a1 = alert(a, AlertKind.REFILL_DUE, Severity.REMINDER, at(10, 21, 12), acknowledged=30, resolved=120)
    a2 = alert(b, AlertKind.RESERVOIR_CRITICAL, Severity.CRITICAL, at(10, 21, 13), acknowledged=10, resolved=4320)
    a3 = alert(b, AlertKind.PUMP_ALARM, Severity.EMERGENCY, at(10, 24, 13), acknowledged=20, resolved=50)
    alert(c, AlertKind.REFILL_OVERDUE, Severity.URGENT, at(10, 28, 4), resolved=600)
    before = alert(a, AlertKind.REFILL_DUE, Severity.REMINDER, at(10, 10, 12), acknowledged=5, resolved=6)

    def notification(alert_row, channel, status, created_at):
        Notification.objects.create(
            alert=alert_row,
            step="0:0",
            channel=channel,
            address=f"{channel}-{status}",
            status=status,
            created_at=created_at,
        )

    notification(a1, Channel.IN_APP, Notification.Status.SENT, a1.raised_at)
    notification(a2, Channel.EMAIL, Notification.Status.FAILED, a2.raised_at)
    notification(a2, Channel.WEBHOOK, Notification.Status.FAILED, a2.raised_at)
    notification(a3, Channel.EMAIL, Notification.Status.FAILED, a3.raised_at)
    notification(before, Channel.EMAIL, Notification.Status.FAILED, before.raised_at)  # before the period

    Appointment.objects.create(pump=a, kind="refill", scheduled_for=at(10, 23, 14), status="completed")
    Appointment.objects.create(pump=b, kind="refill", scheduled_for=at(10, 20, 14), status="missed")
    Appointment.objects.create(pump=b, kind="refill", scheduled_for=at(10, 22, 14), status="cancelled")
    Appointment.objects.create(pump=b, kind="device_check", scheduled_for=at(10, 22, 15), status="missed")
    Appointment.objects.create(pump=a, kind="refill", scheduled_for=at(11, 25, 14), status="scheduled")
    Appointment.objects.create(pump=b, kind="replacement", scheduled_for=at(12, 10, 14), status="scheduled")

    PumpProjection.objects.filter(pump=a).update(delivery_ratio=Decimal("1.2000"))

    # The nurses' rota: Nora and Otto take turns weekly, handing over Mondays 08:00, from Mon
    # 10-19 (Nora). Otto's membership is no longer active: his weeks are hours with nobody on call.
    memberships = {m.user_id: m.pk for m in Membership.objects.filter(clinic=clinic)}
    Rotation.objects.create(
        clinic=clinic,
        name="Nurses on call",
        role=Role.NURSE,
        member_ids=[memberships[nurse.pk], memberships[away.pk]],
        handover_weekday=0,
        handover_time=time(8, 0),
        length_days=7,
        starts_on=date(2026, 10, 19),
    )
    Membership.objects.filter(user=away).update(is_active=False)
    refills = {name: RefillVisit.objects.get(pk=r.pk) for name, r in refills.items()}
    return clinic, {"A": a, "B": b, "C": c}, refills, nurse


@pytest.fixture
def fixture_clinic():
    return build_clinic()


def test_periods_are_days_in_the_clinic_zone_across_a_daylight_saving_change():
    start, end = PERIOD.bounds(NEW_YORK)
    assert (start.astimezone(UTC), end.astimezone(UTC)) == (at(10, 20, 4), at(11, 20, 5))
    assert (end.astimezone(UTC) - start.astimezone(UTC)) == timedelta(days=31, hours=1)
    november = Period.month(2026, 11)
    assert (november.start, november.end, november.label) == (date(2026, 11, 1), date(2026, 11, 30), "November 2026")
    assert Period.quarter(2026, 4).end == date(2026, 12, 31)
    assert Period.between(date(2026, 1, 1), date(2026, 3, 31)).label == "2026-01-01 – 2026-03-31"


def test_percentiles_interpolate_between_ranks_like_percentile_cont():
    values = [Decimal(v) for v in (10, 20, 30)]
    assert percentile(values, Decimal("0.5")) == 20
    assert percentile(values, Decimal("0.9")) == Decimal("28.0")  # rank 1.8: 20 + 0.8 × 10
    assert percentile([Decimal(5)], Decimal("0.1")) == 5
    assert percentile([], Decimal("0.5")) is None


def test_each_refill_stores_what_the_projection_said_before_it_and_an_amendment_keeps_it(fixture_clinic):
    _clinic, _pumps, refills, _nurse = fixture_clinic
    assert refills["A0"].prior_due_on is None and refills["A0"].prior_lra_at is None  # a first fill
    a1 = refills["A1"]
    assert a1.amended_at is not None and a1.aspirated_ml == Decimal("9.50")
    assert (a1.prior_due_on, a1.prior_lra_at, a1.prior_empty_at, a1.prior_conservative_lra_at) == (
        date(2026, 10, 23),
        at(10, 31, 13),
        at(11, 2, 13),
        at(10, 30, 13),
    )
    b1 = refills["B1"]
    assert (b1.prior_due_on, b1.prior_lra_at, b1.prior_empty_at) == (date(2026, 10, 14), at(10, 22, 13), at(10, 24, 13))
    c1 = refills["C1"]
    # 11-04 08:00 EST − 7 days = Wed 10-28, the closure: moved to Tue 10-27.
    assert (c1.prior_unmoved_due_on, c1.prior_due_on) == (date(2026, 10, 28), date(2026, 10, 27))
    assert c1.prior_lra_at == at(11, 5, 13) and c1.discrepancy


def test_the_migration_computes_the_same_snapshot_for_refills_recorded_before_it(fixture_clinic):
    """The backfill (patients 0010) from the record equals what the service stored at the time,
    the closed-day move included; refills that have one are left alone."""
    import importlib

    backfill = importlib.import_module("patients.migrations.0010_refill_prior_projection").backfill
    fields = ("prior_due_on", "prior_unmoved_due_on", "prior_lra_at", "prior_empty_at", "prior_conservative_lra_at")
    stored = {r.pk: tuple(getattr(r, f) for f in fields) for r in RefillVisit.objects.all()}
    assert sum(1 for v in stored.values() if v[0] is not None) == 3
    RefillVisit.objects.update(**dict.fromkeys(fields))
    backfill(live_apps, None)
    assert {r.pk: tuple(getattr(r, f) for f in fields) for r in RefillVisit.objects.all()} == stored


def test_refill_figures_on_time_margin_and_late_refills(fixture_clinic):
    clinic, pumps, refills, _nurse = fixture_clinic
    report = clinic_report(clinic, PERIOD, now=NOW)
    value = lambda key: report.figure(key).value  # noqa: E731
    # A1, B1, C1 (the first fills are before the period).
    assert value("refills_count") == 3
    # On time: A1 only (B1 12 days late; C1 on the closed day, a day after its moved due date): 1/3.
    assert value("refills_on_time_share") == Decimal("33.3")
    # Margins sorted: −4, 7.9583, 7.9583. Median 7.9583 → 8.0; 10th percentile at rank
    # 0.1 × 2 = 0.2: −4 + 0.2 × 11.9583 = −1.6083 → −1.6.
    assert value("margin_median_days") == Decimal("8.0")
    assert value("margin_p10_days") == Decimal("-1.6")
    assert value("refills_after_alarm") == 1 and value("refills_after_empty") == 1
    assert report.late_refills == (
        LateRefill(refill_id=refills["B1"].pk, pump_id=pumps["B"].pk, performed_at=at(10, 26, 13), after="empty"),
    )


def test_days_empty_sums_projected_empty_time_of_every_pump_in_the_period(fixture_clinic):
    clinic, *_ = fixture_clinic
    # B0's fill: empty 10-24 13:00Z until B1 10-26 13:00Z = 2 d.
    # B1's fill (current): empty 11-18 13:00Z until the period's end 11-20 05:00Z = 1 d 16 h = 1.6667 d.
    # A1's fill (current): empty 11-15 14:00Z until 11-20 05:00Z = 4 d 15 h = 4.625 d.
    # C (explanted 11-05): C0 was refilled before empty; C1's would run empty 11-20 14:00Z, and C
    # is out of service by then. Total 8.2917 → 8.3.
    assert clinic_report(clinic, PERIOD, now=NOW).figure("days_empty").value == Decimal("8.3")
    # Seen on 11-17 00:00Z: only A's fill has run empty so far (11-15 14:00Z → 11-17 00:00Z =
    # 1 d 10 h) besides B0's 2 d: 3.4167 → 3.4.
    assert clinic_report(clinic, PERIOD, now=at(11, 17, 0)).figure("days_empty").value == Decimal("3.4")


def test_discrepancies_appointments_devices_and_workload(fixture_clinic):
    clinic, *_ = fixture_clinic
    report = clinic_report(clinic, PERIOD, now=NOW)
    value = lambda key: report.figure(key).value  # noqa: E731
    # A1, B1, C1 had an expected residual; C1 was flagged: 1/3.
    assert value("discrepancy_share") == Decimal("33.3")
    # Refill appointments scheduled in the period: kept 1 (A 10-23), missed 1 (B 10-20),
    # cancelled 1 (B 10-22); B's device check and A's 11-25 refill are not counted.
    assert (value("appointments_kept"), value("appointments_missed"), value("appointments_cancelled")) == (1, 1, 1)
    # On 12-01: A (ERI 2027-05-01, within 180 days, nothing booked) counts; B has a replacement
    # booked; C is explanted. Drift: A's measured ratio 1.20 > 1.10.
    assert value("pumps_near_eri_unbooked") == 1
    assert value("pumps_drifting") == 1
    # Nora did A1 and C1 (B1 was the physician's): 2 refills over 12/31 + 19/30 = 1.0204 months
    # = 1.96 → 2.0.
    workload = report.figure("refills_per_nurse_month")
    assert workload.value == Decimal("2.0")
    assert workload.breakdown == (("Nora Nurse", Decimal("2.0")),)


def test_alerting_figures(fixture_clinic):
    clinic, *_ = fixture_clinic
    report = clinic_report(clinic, PERIOD, now=NOW)
    value = lambda key: report.figure(key).value  # noqa: E731
    # Pumps in service in the period: A, B, C (explanted 11-05) = 3; D was explanted before it.
    # Four alerts raised in the period (the 10-10 reminder is before it): 4 / 3 × 100 = 133.3,
    # each kind 1 / 3 × 100 = 33.3.
    assert value("alerts_per_100_pumps") == Decimal("133.3")
    assert report.figure("alerts_per_100_pumps").breakdown == (
        ("Pump alarm or symptoms reported", Decimal("33.3")),
        ("Refill due", Decimal("33.3")),
        ("Refill overdue", Decimal("33.3")),
        ("Reservoir critical", Decimal("33.3")),
    )
    # Acknowledged: 30 (reminder), 10 (critical), 20 (emergency) min; sorted 10, 20, 30:
    # median 20; 90th percentile at rank 1.8 = 20 + 0.8 × 10 = 28.
    assert value("acknowledge_minutes_median") == Decimal("20.0")
    assert value("acknowledge_minutes_p90") == Decimal("28.0")
    assert report.figure("acknowledge_minutes_median").breakdown == (
        ("Reminder", Decimal("30.0")),
        ("Critical", Decimal("10.0")),
        ("Emergency", Decimal("20.0")),
    )
    # Resolved: 120, 4320, 50, 600 min; sorted 50, 120, 600, 4320: median at rank 1.5 =
    # 120 + 0.5 × 480 = 360; 90th percentile at rank 2.7 = 600 + 0.7 × 3720 = 3204.
    assert value("resolve_minutes_median") == Decimal("360.0")
    assert value("resolve_minutes_p90") == Decimal("3204.0")
    assert dict(report.figure("resolve_minutes_p90").breakdown) == {
        "Reminder": Decimal("120.0"),
        "Urgent": Decimal("600.0"),
        "Critical": Decimal("4320.0"),
        "Emergency": Decimal("50.0"),
    }
    # Critical and emergency: acknowledged after 10 min (yes) and 20 min (no): 50 %.
    assert value("urgent_acknowledged_15min_share") == Decimal("50.0")
    # Failed in the period: two emails and a webhook (the 10-10 one is before it).
    assert value("notifications_failed") == 3
    assert report.figure("notifications_failed").breakdown == (("Email", 2), ("Webhook", 1))
    # Otto's weeks: Mon 10-26 08:00 EDT → Mon 11-02 08:00 EST = 169 h (the clock fell back an
    # hour) and Mon 11-09 08:00 → Mon 11-16 08:00 EST = 168 h: 337 h.
    assert value("rota_gap_hours") == Decimal("337.0")
    assert report.figure("rota_gap_hours").breakdown == (("Nurses on call", Decimal("337.0")),)


def test_report_carries_no_patient_identifier(fixture_clinic):
    clinic, pumps, *_ = fixture_clinic
    report = clinic_report(clinic, PERIOD, now=NOW)
    text = repr(report.figures) + repr(report.late_refills)
    for pump in pumps.values():
        patient = pump.patient
        for identifier in (patient.mrn, patient.given_name, patient.family_name, pump.serial_number):
            assert identifier not in text


def test_report_and_trend_have_every_figure_and_twelve_months(fixture_clinic):
    clinic, *_ = fixture_clinic
    report = clinic_report(clinic, PERIOD, now=NOW)
    assert [f.key for f in report.figures] == [s.key for s in SPECS]
    trend = monthly_trend(clinic, Period.month(2026, 11), now=NOW)
    assert "pumps_drifting" not in trend  # a device figure is a state now, not a monthly series
    months = [month for month, _value in trend["refills_count"]]
    assert months[0] == date(2025, 12, 1) and months[-1] == date(2026, 11, 1) and len(months) == 12
    # October: the six refills (three first fills, A1, B1, C1); November none.
    assert trend["refills_count"][-2:] == [(date(2026, 10, 1), 6), (date(2026, 11, 1), 0)]
    assert trend["refills_on_time_share"][-2] == (date(2026, 10, 1), Decimal("33.3"))


def test_the_report_and_trend_take_the_same_queries_for_more_pumps_and_refills():
    small, *_ = build_clinic()
    large, *_ = build_clinic(extra_pumps=4)
    counts = []
    for clinic in (small, large):
        with CaptureQueriesContext(connection) as report_queries:
            clinic_report(clinic, PERIOD, now=NOW)
        with CaptureQueriesContext(connection) as trend_queries:
            monthly_trend(clinic, Period.month(2026, 11), now=NOW)
        counts.append((len(report_queries), len(trend_queries)))
    assert counts[0] == counts[1], counts
    assert counts[0][0] <= 20
    # The trend: eight queries grouped by month, and eight a month (margins, acknowledge and
    # resolve times, empty days' two, rota_plans' three): 8 + 12 × 8 (docs/reports.md).
    assert counts[0][1] == 8 + 12 * 8, counts


def test_benchmark_reports_prints_time_and_queries_and_keeps_nothing():
    from io import StringIO

    from django.core.management import call_command

    from clinics.models import Clinic

    clinics = Clinic.objects.count()
    out = StringIO()
    call_command("benchmark_reports", pumps=3, years=1, stdout=out)
    text = out.getvalue()
    assert "report (first)" in text and "12-month trend" in text and "queries" in text
    assert Clinic.objects.count() == clinics


def test_physician_review_conclusions_are_counted_by_outcome_in_the_period_they_were_concluded(fixture_clinic):
    clinic, pumps, refills, _nurse = fixture_clinic
    physician = Membership.objects.get(clinic=clinic, role=Role.PHYSICIAN).user

    def review(pump, refill, raised_at):
        return Alert.objects.create(
            clinic=clinic,
            pump=pump,
            refill=refill,
            kind=AlertKind.RESIDUAL_DISCREPANCY,
            severity=Severity.URGENT,
            dedupe_key=f"residual_discrepancy:refill:{refill.pk}",
            status=Alert.Status.TRIGGERED,
            raised_at=raised_at,
        )

    # C1's review concluded in the period (catheter), A1's too (entry error), B1's after it.
    for pump, refill, outcome, concluded in (
        ("C", "C1", ReviewConclusion.Outcome.CATHETER, at(10, 30, 15)),
        ("A", "A1", ReviewConclusion.Outcome.ENTRY_ERROR, at(11, 2, 15)),
        ("B", "B1", ReviewConclusion.Outcome.CATHETER, at(11, 25, 15)),
    ):
        alert = review(pumps[pump], refills[refill], concluded - timedelta(days=2))
        conclude_review(alert=alert, actor=physician, outcome=outcome, action="none", now=concluded)

    figure = clinic_report(clinic, PERIOD, now=NOW).figure("review_conclusions")
    assert figure.value == 2
    breakdown = dict(figure.breakdown)
    assert breakdown["Catheter problem suspected"] == 1
    assert breakdown["Measurement or entry error"] == 1
    assert breakdown["Pocket fill suspected"] == 0
    assert len(breakdown) == len(ReviewConclusion.Outcome.choices)
    # November holds the one concluded on 11-25 (and the one on 11-02): the trend counts both.
    trend = dict(monthly_trend(clinic, Period.month(2026, 11), months=2, now=NOW)["review_conclusions"])
    assert trend[date(2026, 10, 1)] == 1
    assert trend[date(2026, 11, 1)] == 2


def test_the_trend_equals_a_report_for_each_of_its_months(fixture_clinic):
    """Each month of the trend holds exactly the figure of that month's own report: over the
    fixture (the New York daylight-saving change, the amended refill, the mid-period explant, a
    review concluded each side of a month's end) and a last month that holds ``now``."""
    clinic, pumps, refills, _nurse = fixture_clinic
    physician = Membership.objects.get(clinic=clinic, role=Role.PHYSICIAN).user
    for pump, refill, outcome, concluded in (
        ("C", "C1", ReviewConclusion.Outcome.CATHETER, at(11, 1, 3, 30)),  # 10-31 23:30 EDT: October
        ("A", "A1", ReviewConclusion.Outcome.ENTRY_ERROR, at(11, 1, 4, 30)),  # 11-01 00:30 EDT: November
    ):
        alert = Alert.objects.create(
            clinic=clinic,
            pump=pumps[pump],
            refill=refills[refill],
            kind=AlertKind.RESIDUAL_DISCREPANCY,
            severity=Severity.URGENT,
            dedupe_key=f"residual_discrepancy:refill:{refills[refill].pk}",
            status=Alert.Status.TRIGGERED,
            raised_at=concluded - timedelta(days=2),
        )
        conclude_review(alert=alert, actor=physician, outcome=outcome, action="none", now=concluded)
    last = Period.month(2026, 12)
    trend = monthly_trend(clinic, last, now=NOW)
    months = [month for month, _value in trend["refills_count"]]
    assert months[0] == date(2026, 1, 1) and months[-1] == date(2026, 12, 1)
    reports = [clinic_report(clinic, Period.month(m.year, m.month), now=NOW) for m in months]
    expected = {key: [(m, r.figure(key).value) for m, r in zip(months, reports, strict=True)] for key in trend}
    assert trend == expected
    assert dict(trend["review_conclusions"])[date(2026, 10, 1)] == 1
    assert dict(trend["days_empty"])[date(2026, 12, 1)] is not None
