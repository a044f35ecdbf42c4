"""The depletion projection (patients/depletion.py) against CLINICAL.md "The projection".

Pure functions over plain values: no database. Times in the worked example are the clinic's
local time (America/Phoenix, no daylight saving); everything else says which zone it uses.
"""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patients import depletion
from patients.depletion import DeliverySample, Fill, Segment

PHOENIX = ZoneInfo("America/Phoenix")
NEW_YORK = ZoneInfo("America/New_York")

LRA_ML = Decimal("2.0")  # manufacturer's default threshold
ALLOWANCE_PCT = Decimal("5")  # clinic's default over-infusion allowance
MAX_DAYS_IN_PUMP = 180
MARGIN_DAYS = 7
REMINDER_DAYS = 14
CRITICAL_HOURS = 48

# Decimal arithmetic (28 digits) leaves noise far below anything a syringe can measure.
NOISE_ML = Decimal("1e-18")


def rate(dose_mcg_per_day, concentration_mcg_per_ml, bolus_mcg_per_day="0"):
    return depletion.rate_ml_per_day(
        Decimal(dose_mcg_per_day), Decimal(bolus_mcg_per_day), Decimal(concentration_mcg_per_ml)
    )


def fill(volume_ml, filled_at, *programs):
    """A fill drained by (start, rate mL/day) programs; a bare rate starts at the fill."""
    segments = tuple(
        Segment(start=filled_at, rate_ml_per_day=p)
        if isinstance(p, Decimal)
        else Segment(start=p[0], rate_ml_per_day=p[1])
        for p in programs
    )
    return Fill(filled_at=filled_at, volume_ml=Decimal(volume_ml), segments=segments)


def project(pump_fill, *, now=None, zone=PHOENIX, **overrides):
    """The projection with the clinic's defaults (CLINICAL.md), judged at ``now`` (the fill if omitted)."""
    options = {
        "lra_ml": LRA_ML,
        "max_days_in_pump": MAX_DAYS_IN_PUMP,
        "vial_expires_on": None,
        "overinfusion_allowance_pct": ALLOWANCE_PCT,
        "margin": MARGIN_DAYS,
        "reminder_days": REMINDER_DAYS,
        "critical_hours": CRITICAL_HOURS,
    }
    options.update(overrides)
    return depletion.project(pump_fill, zone=zone, now=now or pump_fill.filled_at, **options)


def phoenix(*args):
    return datetime(*args, tzinfo=PHOENIX)


def new_york(*args):
    return datetime(*args, tzinfo=NEW_YORK)


def utc(*args):
    return datetime(*args, tzinfo=UTC)


# --- The worked example -------------------------------------------------------------------------

WORKED_FILLED_AT = phoenix(2026, 1, 5, 9, 0)


def worked_example():
    """40 mL of 2000 mcg/mL at 600 mcg/day, no bolus, filled 2026-01-05 09:00 Phoenix time."""
    return fill("40", WORKED_FILLED_AT, rate("600", "2000"))


def test_worked_example_runs_at_three_tenths_of_a_ml_a_day():
    assert rate("600", "2000") == Decimal("0.3")


def test_worked_example_low_reservoir_alarm_sounds_may_12_at_0100():
    assert depletion.time_reaching(worked_example(), LRA_ML) == phoenix(2026, 5, 12, 1, 0, 0)


def test_worked_example_reservoir_runs_empty_may_18_at_1700():
    assert depletion.time_reaching(worked_example(), Decimal("0")) == phoenix(2026, 5, 18, 17, 0, 0)


def test_worked_example_conservative_alarm_is_may_6_at_00_14_17():
    factor = depletion.conservative_factor(ALLOWANCE_PCT, None)
    assert factor == Decimal("1.05")
    assert depletion.time_reaching(worked_example(), LRA_ML, factor) == phoenix(2026, 5, 6, 0, 14, 17)


def test_worked_example_drug_expires_180_days_after_the_fill():
    expires_at = depletion.drug_expires_at(WORKED_FILLED_AT, MAX_DAYS_IN_PUMP, None, PHOENIX)
    assert expires_at == phoenix(2026, 7, 4, 9, 0)


def test_worked_example_refill_is_due_april_29():
    assert depletion.margin_days(MARGIN_DAYS, 0, 3, high_risk=False) == 7
    due_on = depletion.refill_due_on(phoenix(2026, 5, 6, 0, 14, 17), phoenix(2026, 7, 4, 9, 0), PHOENIX, 7)
    assert due_on == date(2026, 4, 29)


def test_worked_example_expected_residual_on_april_20_is_exactly_8_5_ml():
    residual = depletion.expected_residual_ml(worked_example(), phoenix(2026, 4, 20, 9, 0))
    assert residual == Decimal("8.5")
    assert str(residual) == "8.5"


def test_worked_example_projection_carries_every_figure():
    projection = project(worked_example(), now=phoenix(2026, 2, 1, 12, 0))
    assert projection.filled_at == WORKED_FILLED_AT
    assert projection.reservoir_at_fill_ml == Decimal("40")
    assert projection.rate_ml_per_day == Decimal("0.3")
    assert projection.conservative_factor == Decimal("1.05")
    assert projection.delivery_ratio is None
    assert projection.lra_at == phoenix(2026, 5, 12, 1, 0, 0)
    assert projection.empty_at == phoenix(2026, 5, 18, 17, 0, 0)
    assert projection.conservative_lra_at == phoenix(2026, 5, 6, 0, 14, 17)
    assert projection.drug_expires_at == phoenix(2026, 7, 4, 9, 0)
    assert projection.refill_due_on == date(2026, 4, 29)
    assert projection.due_soon_from == phoenix(2026, 4, 15, 0, 0)
    assert projection.overdue_from == phoenix(2026, 4, 30, 0, 0)
    assert projection.critical_from == phoenix(2026, 5, 4, 0, 14, 17)
    assert projection.is_stopped is False
    assert projection.computed_at == phoenix(2026, 2, 1, 12, 0)


def test_worked_example_reservoir_reads_the_alarm_threshold_at_the_alarm_and_nothing_after_empty():
    pump_fill = worked_example()
    assert abs(depletion.volume_at(pump_fill, phoenix(2026, 5, 12, 1, 0)) - LRA_ML) < NOISE_ML
    assert depletion.volume_at(pump_fill, phoenix(2026, 5, 12, 1, 0, 1)) < LRA_ML
    assert depletion.volume_at(pump_fill, phoenix(2026, 5, 18, 17, 0)) < NOISE_ML
    assert depletion.volume_at(pump_fill, phoenix(2026, 5, 18, 17, 0, 1)) == 0


def test_worked_example_reservoir_reads_full_at_and_before_the_fill():
    pump_fill = worked_example()
    assert depletion.volume_at(pump_fill, WORKED_FILLED_AT) == Decimal("40")
    assert depletion.volume_at(pump_fill, WORKED_FILLED_AT - timedelta(days=3)) == Decimal("40")
    assert depletion.volume_at(pump_fill, WORKED_FILLED_AT + timedelta(days=1)) == Decimal("39.7")


@pytest.mark.parametrize(
    ("now", "status"),
    [
        pytest.param(phoenix(2026, 1, 5, 9, 0), depletion.OK, id="at the fill"),
        pytest.param(phoenix(2026, 4, 14, 23, 59, 59), depletion.OK, id="last second before the reminder window"),
        pytest.param(phoenix(2026, 4, 15, 0, 0), depletion.DUE_SOON, id="14 days before the due date"),
        pytest.param(phoenix(2026, 4, 29, 23, 59, 59), depletion.DUE_SOON, id="last second of the due date"),
        pytest.param(phoenix(2026, 4, 30, 0, 0), depletion.OVERDUE, id="the day after the due date"),
        pytest.param(phoenix(2026, 5, 4, 0, 14, 16), depletion.OVERDUE, id="one second before 48 h to alarm"),
        pytest.param(phoenix(2026, 5, 4, 0, 14, 17), depletion.CRITICAL, id="48 h before the conservative alarm"),
        pytest.param(phoenix(2026, 5, 12, 1, 0), depletion.CRITICAL, id="the pump's own alarm"),
        pytest.param(phoenix(2026, 5, 20, 9, 0), depletion.CRITICAL, id="empty"),
        pytest.param(phoenix(2026, 7, 4, 9, 0), depletion.CRITICAL, id="drug expired"),
        pytest.param(utc(2026, 4, 15, 6, 59, 59), depletion.OK, id="UTC instant before Phoenix midnight"),
        pytest.param(utc(2026, 4, 15, 7, 0, 0), depletion.DUE_SOON, id="UTC instant of Phoenix midnight"),
    ],
)
def test_worked_example_status_follows_the_calendar(now, status):
    projection = project(worked_example())
    assert projection.status(now) == status
    assert depletion.status_at(projection, now) == status


def test_stored_row_with_the_same_instants_gets_the_same_status():
    projection = project(worked_example())
    row = SimpleNamespace(
        is_stopped=projection.is_stopped,
        critical_from=projection.critical_from,
        overdue_from=projection.overdue_from,
        due_soon_from=projection.due_soon_from,
    )
    for now in (phoenix(2026, 3, 1), phoenix(2026, 4, 20), phoenix(2026, 5, 1), phoenix(2026, 5, 5)):
        assert depletion.status_at(row, now) == projection.status(now)


def test_projection_reports_the_reservoir_from_its_fill():
    pump_fill = worked_example()
    assert project(pump_fill).reservoir_ml(pump_fill, phoenix(2026, 4, 20, 9, 0)) == Decimal("8.5")


# --- Doses, concentrations and boluses ---------------------------------------------------------


def test_bolus_allowance_adds_to_the_rate():
    assert rate("600", "2000", bolus_mcg_per_day="100") == Decimal("0.35")
    assert rate("600", "2000", bolus_mcg_per_day="100") > rate("600", "2000")


def test_bolus_allowance_moves_alarm_earlier():
    with_bolus = fill("40", WORKED_FILLED_AT, rate("600", "2000", bolus_mcg_per_day="100"))
    # (40 − 2) / 0.35 = 108.571… days, rounded down to the second
    assert depletion.time_reaching(with_bolus, LRA_ML) == phoenix(2026, 4, 23, 22, 42, 51)
    assert depletion.time_reaching(with_bolus, LRA_ML) < depletion.time_reaching(worked_example(), LRA_ML)


@pytest.mark.parametrize("concentration", ["0", "-2000"])
def test_concentration_must_be_positive(concentration):
    with pytest.raises(ValueError, match="concentration"):
        rate("600", concentration)


def test_dose_increase_mid_cycle_moves_alarm_earlier():
    raised_at = phoenix(2026, 2, 4, 9, 0)  # 30 days in: 9 mL gone, 31 mL left
    raised = fill("40", WORKED_FILLED_AT, rate("600", "2000"), (raised_at, rate("900", "2000")))
    assert depletion.volume_at(raised, raised_at) == Decimal("31")
    # (31 − 2) / 0.45 = 64 days 10 h 40 min after the change
    assert depletion.time_reaching(raised, LRA_ML) == phoenix(2026, 4, 9, 19, 40)
    assert depletion.time_reaching(raised, LRA_ML) < depletion.time_reaching(worked_example(), LRA_ML)
    projection = project(raised, now=phoenix(2026, 2, 10))
    assert projection.rate_ml_per_day == Decimal("0.45")
    # the allowance applies to both programs: 30.55 mL left at the change, (30.55 − 2) / 0.4725 days
    assert projection.conservative_lra_at == phoenix(2026, 4, 5, 19, 9, 31)
    assert projection.refill_due_on == date(2026, 3, 29)
    assert projection.refill_due_on < project(worked_example()).refill_due_on


def test_dose_decrease_mid_cycle_moves_alarm_later():
    lowered = fill("40", WORKED_FILLED_AT, rate("600", "2000"), (phoenix(2026, 2, 4, 9, 0), rate("400", "2000")))
    # (31 − 2) / 0.2 = 145 days after the change
    assert depletion.time_reaching(lowered, LRA_ML) == phoenix(2026, 6, 29, 9, 0)
    assert depletion.time_reaching(lowered, LRA_ML) > depletion.time_reaching(worked_example(), LRA_ML)


def test_projection_judges_the_program_in_effect_now():
    raised = fill("40", WORKED_FILLED_AT, rate("600", "2000"), (phoenix(2026, 2, 4, 9, 0), rate("900", "2000")))
    assert project(raised, now=phoenix(2026, 2, 4, 8, 59, 59)).rate_ml_per_day == Decimal("0.3")
    assert project(raised, now=phoenix(2026, 2, 4, 9, 0)).rate_ml_per_day == Decimal("0.45")
    assert project(raised, now=phoenix(2025, 12, 1)).rate_ml_per_day == Decimal("0.3")  # before the fill


def test_concentration_change_at_refill_starts_a_fill_with_its_own_rate():
    old = fill("40", WORKED_FILLED_AT, rate("500", "1000"))  # 0.5 mL/day
    refilled_at = phoenix(2026, 3, 6, 9, 0)  # 60 days later
    assert depletion.expected_residual_ml(old, refilled_at) == Decimal("10")

    new = fill("40", refilled_at, rate("500", "2000"))  # same dose, twice the strength
    projection = project(new, now=refilled_at)
    assert projection.rate_ml_per_day == Decimal("0.25")
    assert projection.lra_at == phoenix(2026, 8, 5, 9, 0)  # 38 / 0.25 = 152 days
    assert projection.conservative_lra_at == phoenix(2026, 7, 29, 3, 17, 8)
    assert projection.drug_expires_at == phoenix(2026, 9, 2, 9, 0)
    assert projection.refill_due_on == date(2026, 7, 22)
    # the old fill at the old strength would have alarmed after 76 days
    assert depletion.time_reaching(fill("40", refilled_at, rate("500", "1000")), LRA_ML) == phoenix(2026, 5, 21, 9, 0)


def test_constant_flow_pump_drains_at_the_device_flow_rate():
    # Codman 3000: the device sets 0.75 mL/day; at 500 mcg/mL the dose follows as 375 mcg/day.
    flow = Decimal("0.75")
    assert flow * Decimal("500") == Decimal("375")
    codman = fill("30", WORKED_FILLED_AT, flow)
    projection = project(codman)
    assert projection.rate_ml_per_day == flow
    assert projection.lra_at == phoenix(2026, 2, 11, 17, 0)  # 28 / 0.75 = 37 days 8 h
    assert projection.empty_at == phoenix(2026, 2, 14, 9, 0)  # 30 / 0.75 = 40 days
    assert projection.conservative_lra_at == phoenix(2026, 2, 9, 22, 20)  # 28 / 0.7875 = 35 days 13 h 20 min
    assert projection.refill_due_on == date(2026, 2, 2)


def test_programs_are_taken_in_time_order_whatever_order_they_arrive_in():
    raised_at = phoenix(2026, 2, 4, 9, 0)
    in_order = fill("40", WORKED_FILLED_AT, rate("600", "2000"), (raised_at, rate("900", "2000")))
    shuffled = fill("40", WORKED_FILLED_AT, (raised_at, rate("900", "2000")), rate("600", "2000"))
    assert depletion.time_reaching(shuffled, LRA_ML) == depletion.time_reaching(in_order, LRA_ML)
    assert depletion.volume_at(shuffled, phoenix(2026, 3, 1)) == depletion.volume_at(in_order, phoenix(2026, 3, 1))


def test_program_entered_before_the_fill_counts_from_the_fill():
    earlier = fill("40", WORKED_FILLED_AT, (WORKED_FILLED_AT - timedelta(days=90), rate("600", "2000")))
    assert depletion.volume_at(earlier, phoenix(2026, 4, 20, 9, 0)) == Decimal("8.5")
    assert depletion.time_reaching(earlier, LRA_ML) == phoenix(2026, 5, 12, 1, 0)


def test_program_superseded_before_the_fill_is_ignored():
    pump_fill = fill(
        "40",
        WORKED_FILLED_AT,
        (WORKED_FILLED_AT - timedelta(days=90), rate("2000", "2000")),
        (WORKED_FILLED_AT - timedelta(days=1), rate("600", "2000")),
    )
    assert depletion.time_reaching(pump_fill, LRA_ML) == phoenix(2026, 5, 12, 1, 0)


def test_segments_from_programs_orders_programs_by_effective_time():
    later, earlier = phoenix(2026, 2, 4, 9, 0), WORKED_FILLED_AT
    segments = depletion.segments_from_programs([(later, Decimal("0.45")), (earlier, Decimal("0.3"))])
    assert segments == (Segment(earlier, Decimal("0.3")), Segment(later, Decimal("0.45")))


# --- Drug expiry ---------------------------------------------------------------------------------


def test_low_dose_pump_is_bound_by_drug_expiry_not_by_the_alarm():
    low_dose = fill("40", WORKED_FILLED_AT, rate("100", "2000"))  # 0.05 mL/day: 760 days to alarm
    projection = project(low_dose)
    assert projection.lra_at == WORKED_FILLED_AT + timedelta(days=760)
    assert projection.drug_expires_at == phoenix(2026, 7, 4, 9, 0)
    assert projection.refill_due_on == date(2026, 6, 27)
    assert projection.critical_from == phoenix(2026, 7, 4, 9, 0)
    assert projection.status(phoenix(2026, 7, 4, 8, 59, 59)) == depletion.OVERDUE
    assert projection.status(phoenix(2026, 7, 4, 9, 0)) == depletion.CRITICAL
    assert depletion.expected_residual_ml(low_dose, phoenix(2026, 7, 4, 9, 0)) == Decimal("31")


def test_compounded_drug_expires_at_the_start_of_its_beyond_use_date_in_the_clinic_zone():
    compounded = fill("20", WORKED_FILLED_AT, rate("300", "1500"))  # pharmacy-diluted, 0.2 mL/day
    projection = project(compounded, vial_expires_on=date(2026, 2, 15))
    assert projection.lra_at == phoenix(2026, 4, 5, 9, 0)  # 90 days: the beyond-use date comes first
    assert projection.drug_expires_at == phoenix(2026, 2, 15, 0, 0)
    assert projection.drug_expires_at == utc(2026, 2, 15, 7, 0)
    assert projection.refill_due_on == date(2026, 2, 8)
    assert projection.status(phoenix(2026, 2, 14, 23, 59, 59)) == depletion.OVERDUE
    assert projection.status(phoenix(2026, 2, 15, 0, 0)) == depletion.CRITICAL


def test_vial_date_is_read_in_the_clinic_zone_not_in_utc():
    filled_at = utc(2026, 1, 5, 14, 0)
    expires_at = depletion.drug_expires_at(filled_at, MAX_DAYS_IN_PUMP, date(2026, 2, 15), NEW_YORK)
    assert expires_at == new_york(2026, 2, 15, 0, 0)
    assert expires_at == utc(2026, 2, 15, 5, 0)


def test_vial_dated_after_the_stability_limit_does_not_extend_it():
    expires_at = depletion.drug_expires_at(WORKED_FILLED_AT, MAX_DAYS_IN_PUMP, date(2027, 12, 31), PHOENIX)
    assert expires_at == phoenix(2026, 7, 4, 9, 0)


def test_vial_dated_on_the_stability_day_expires_at_that_mornings_midnight():
    expires_at = depletion.drug_expires_at(WORKED_FILLED_AT, MAX_DAYS_IN_PUMP, date(2026, 7, 4), PHOENIX)
    assert expires_at == phoenix(2026, 7, 4, 0, 0)


# --- Stopped pumps, late refills, low fills -----------------------------------------------------


def test_stopped_pump_never_alarms_and_is_bound_only_by_expiry():
    stopped = fill("40", WORKED_FILLED_AT, Decimal("0"))  # e.g. weaning finished
    projection = project(stopped)
    assert projection.rate_ml_per_day == Decimal("0")
    assert projection.lra_at is None
    assert projection.empty_at is None
    assert projection.conservative_lra_at is None
    assert projection.drug_expires_at == phoenix(2026, 7, 4, 9, 0)
    assert projection.refill_due_on == date(2026, 6, 27)
    assert projection.critical_from == projection.drug_expires_at
    assert projection.is_stopped is True
    for now in (phoenix(2026, 1, 6), phoenix(2026, 6, 28), phoenix(2026, 8, 1)):
        assert projection.status(now) == depletion.STOPPED
    assert depletion.volume_at(stopped, phoenix(2026, 8, 1)) == Decimal("40")


def test_pump_stopped_mid_cycle_keeps_its_volume_and_never_alarms():
    stopped_at = phoenix(2026, 2, 4, 9, 0)
    pump_fill = fill("40", WORKED_FILLED_AT, rate("600", "2000"), (stopped_at, Decimal("0")))
    assert depletion.time_reaching(pump_fill, LRA_ML) is None
    assert depletion.volume_at(pump_fill, phoenix(2026, 6, 1)) == Decimal("31")
    assert project(pump_fill, now=stopped_at).status(stopped_at) == depletion.STOPPED
    assert project(pump_fill, now=phoenix(2026, 2, 1)).status(phoenix(2026, 2, 1)) == depletion.OK


def test_therapy_paused_ten_days_moves_alarm_ten_days_later():
    pump_fill = fill(
        "40",
        WORKED_FILLED_AT,
        rate("600", "2000"),
        (phoenix(2026, 2, 4, 9, 0), Decimal("0")),
        (phoenix(2026, 2, 14, 9, 0), rate("600", "2000")),
    )
    assert depletion.time_reaching(pump_fill, LRA_ML) == phoenix(2026, 5, 22, 1, 0)
    empty_at = depletion.time_reaching(pump_fill, Decimal("0"))
    assert empty_at == phoenix(2026, 5, 28, 17, 0)


def test_empty_time_that_falls_on_a_whole_second_is_reported_at_that_second():
    pump_fill = fill(
        "40",
        WORKED_FILLED_AT,
        rate("600", "2000"),
        (phoenix(2026, 2, 4, 9, 0), Decimal("0")),
        (phoenix(2026, 2, 14, 9, 0), rate("600", "2000")),
    )
    # 31 mL at 0.3 mL/day from 14 February 09:00 is exactly 103 days 8 hours
    assert depletion.time_reaching(pump_fill, Decimal("0")) == phoenix(2026, 5, 28, 17, 0)


def test_pump_with_no_program_is_stopped():
    projection = project(Fill(filled_at=WORKED_FILLED_AT, volume_ml=Decimal("40"), segments=()))
    assert projection.is_stopped is True
    assert projection.lra_at is None


def test_refill_late_after_empty_expects_no_residual():
    pump_fill = worked_example()
    late = phoenix(2026, 5, 25, 9, 0)  # a week after empty
    assert depletion.volume_at(pump_fill, late) == Decimal("0")
    assert depletion.expected_residual_ml(pump_fill, late) == Decimal("0")
    assert depletion.consumed_ml(pump_fill, late) > Decimal("40")  # the programs ran on; the volume did not


def test_alarm_threshold_above_the_fill_is_reached_at_the_fill():
    low_fill = fill("1.5", WORKED_FILLED_AT, rate("600", "2000"))
    projection = project(low_fill)
    assert projection.lra_at == WORKED_FILLED_AT
    assert projection.conservative_lra_at == WORKED_FILLED_AT
    assert projection.empty_at == phoenix(2026, 1, 10, 9, 0)  # 1.5 / 0.3 = 5 days
    assert projection.refill_due_on == date(2025, 12, 29)
    assert projection.status(WORKED_FILLED_AT) == depletion.CRITICAL


def test_alarm_threshold_equal_to_the_fill_is_reached_at_the_fill():
    assert depletion.time_reaching(fill("2.0", WORKED_FILLED_AT, rate("600", "2000")), LRA_ML) == WORKED_FILLED_AT


def test_empty_fill_is_empty_at_the_fill():
    assert depletion.time_reaching(fill("0", WORKED_FILLED_AT, rate("600", "2000")), Decimal("0")) == WORKED_FILLED_AT


# --- Flow accuracy: the conservative factor and the measured delivery ratio ---------------------


def eight_percent_over():
    return [DeliverySample(gone_ml=Decimal("32.4"), programmed_ml=Decimal("30")) for _ in range(3)]


def test_pump_delivering_8_percent_over_gets_a_conservative_factor_of_1_08():
    ratio = depletion.delivery_ratio(eight_percent_over())
    assert ratio == Decimal("1.08")
    assert depletion.conservative_factor(ALLOWANCE_PCT, ratio) == Decimal("1.08")


def test_pump_delivering_8_percent_over_alarms_earlier_than_the_clinic_allowance_says():
    ratio = depletion.delivery_ratio(eight_percent_over())
    projection = project(worked_example(), measured_delivery_ratio=ratio)
    assert projection.conservative_factor == Decimal("1.08")
    assert projection.delivery_ratio == Decimal("1.08")
    # 38 / 0.324 = 117.284 days
    assert projection.conservative_lra_at == phoenix(2026, 5, 2, 15, 48, 53)
    assert projection.conservative_lra_at < phoenix(2026, 5, 6, 0, 14, 17)
    assert projection.refill_due_on == date(2026, 4, 25)
    assert projection.lra_at == phoenix(2026, 5, 12, 1, 0)  # the pump's own alarm ignores the measurement


def test_pump_drifting_less_than_the_allowance_keeps_the_clinic_factor():
    samples = [DeliverySample(gone_ml=Decimal("30.9"), programmed_ml=Decimal("30")) for _ in range(2)]
    assert depletion.delivery_ratio(samples) == Decimal("1.03")
    assert depletion.conservative_factor(ALLOWANCE_PCT, Decimal("1.03")) == Decimal("1.05")


def test_under_delivering_pump_never_loosens_the_clinic_factor():
    assert depletion.conservative_factor(ALLOWANCE_PCT, Decimal("0.9")) == Decimal("1.05")


@pytest.mark.parametrize(("allowance_pct", "factor"), [("0", "1"), ("5", "1.05"), ("14.5", "1.145")])
def test_clinic_allowance_sets_the_conservative_factor(allowance_pct, factor):
    assert depletion.conservative_factor(Decimal(allowance_pct), None) == Decimal(factor)


def test_delivery_ratio_needs_two_measured_intervals():
    assert depletion.delivery_ratio([]) is None
    assert depletion.delivery_ratio(eight_percent_over()[:1]) is None
    assert depletion.delivery_ratio(eight_percent_over()[:2]) == Decimal("1.08")


def test_delivery_ratio_uses_the_last_three_intervals():
    samples = [
        DeliverySample(gone_ml=Decimal("60"), programmed_ml=Decimal("30")),  # oldest: ratio 2, dropped
        DeliverySample(gone_ml=Decimal("31"), programmed_ml=Decimal("30")),
        DeliverySample(gone_ml=Decimal("33"), programmed_ml=Decimal("30")),
        DeliverySample(gone_ml=Decimal("35"), programmed_ml=Decimal("30")),
    ]
    assert depletion.delivery_ratio(samples) == Decimal("99") / Decimal("90")  # 1.10, not 159 / 120


def test_delivery_ratio_sums_volumes_rather_than_averaging_ratios():
    samples = [
        DeliverySample(gone_ml=Decimal("11"), programmed_ml=Decimal("10")),  # 1.10 over 10 mL
        DeliverySample(gone_ml=Decimal("30"), programmed_ml=Decimal("30")),  # 1.00 over 30 mL
    ]
    assert depletion.delivery_ratio(samples) == Decimal("41") / Decimal("40")


def test_delivery_ratio_leaves_out_intervals_flagged_as_discrepancies():
    pocket_fill = DeliverySample(gone_ml=Decimal("40"), programmed_ml=Decimal("20"), excluded=True)
    samples = [*eight_percent_over()[:2], pocket_fill]
    assert depletion.delivery_ratio(samples) == Decimal("1.08")


def test_delivery_ratio_counts_only_unflagged_intervals_toward_the_minimum():
    flagged = DeliverySample(gone_ml=Decimal("40"), programmed_ml=Decimal("20"), excluded=True)
    assert depletion.delivery_ratio([flagged, eight_percent_over()[0]]) is None


def test_delivery_ratio_skips_intervals_with_nothing_programmed():
    stopped_interval = DeliverySample(gone_ml=Decimal("0"), programmed_ml=Decimal("0"))
    assert depletion.delivery_ratio([stopped_interval, eight_percent_over()[0]]) is None
    assert depletion.delivery_ratio([*eight_percent_over()[:2], stopped_interval]) == Decimal("1.08")


# --- Safety margin -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("patient_extra", "high_risk", "margin", "due_on"),
    [
        pytest.param(0, False, 7, date(2026, 4, 29), id="clinic margin only"),
        pytest.param(0, True, 10, date(2026, 4, 26), id="high-risk patient"),
        pytest.param(2, False, 9, date(2026, 4, 27), id="patient travels"),
        pytest.param(2, True, 12, date(2026, 4, 24), id="high-risk patient who travels"),
    ],
)
def test_high_risk_patient_gets_a_wider_margin(patient_extra, high_risk, margin, due_on):
    assert depletion.margin_days(MARGIN_DAYS, patient_extra, 3, high_risk) == margin
    projection = project(worked_example(), margin=margin)
    assert projection.refill_due_on == due_on
    assert projection.overdue_from == datetime.combine(due_on + timedelta(days=1), datetime.min.time(), PHOENIX)


def test_wider_margin_brings_the_reminder_forward_but_not_the_critical_alarm():
    usual, high_risk = project(worked_example(), margin=7), project(worked_example(), margin=10)
    assert high_risk.due_soon_from == usual.due_soon_from - timedelta(days=3)
    assert high_risk.critical_from == usual.critical_from


# --- Daylight saving: elapsed hours, calendar due dates ------------------------------------------


def new_york_fill_in_february():
    """20 mL at 0.3 mL/day filled 2026-02-02 09:00 EST, as the database returns it (UTC).

    Clocks in New York spring forward on 2026-03-08.
    """
    filled_at = utc(2026, 2, 2, 14, 0)
    return fill("20", filled_at, rate("600", "2000"))


def test_alarm_after_spring_forward_is_counted_in_elapsed_hours():
    projection = project(new_york_fill_in_february(), zone=NEW_YORK)
    # (20 − 2) / 0.3 = 60 days = 1440 h after 09:00 EST: 10:00 on the clock after the change
    assert projection.lra_at == utc(2026, 2, 2, 14, 0) + timedelta(hours=1440)
    assert projection.lra_at == new_york(2026, 4, 3, 10, 0)
    assert projection.conservative_lra_at == new_york(2026, 3, 31, 13, 25, 42)
    assert projection.critical_from == new_york(2026, 3, 29, 13, 25, 42)
    assert projection.drug_expires_at == utc(2026, 2, 2, 14, 0) + timedelta(hours=180 * 24)
    assert projection.drug_expires_at == new_york(2026, 8, 1, 10, 0)


def test_due_date_after_spring_forward_is_the_calendar_date_minus_the_margin():
    projection = project(new_york_fill_in_february(), zone=NEW_YORK)
    assert projection.refill_due_on == date(2026, 3, 24)


def test_overdue_and_reminder_start_at_local_midnight_after_spring_forward():
    projection = project(new_york_fill_in_february(), zone=NEW_YORK)
    assert projection.overdue_from == new_york(2026, 3, 25, 0, 0)
    assert projection.overdue_from == utc(2026, 3, 25, 4, 0)  # EDT midnight, not EST
    assert projection.due_soon_from == new_york(2026, 3, 10, 0, 0)
    assert projection.due_soon_from == utc(2026, 3, 10, 4, 0)
    assert projection.status(utc(2026, 3, 25, 3, 59, 59)) == depletion.DUE_SOON
    assert projection.status(utc(2026, 3, 25, 4, 0)) == depletion.OVERDUE


def test_daylight_saving_change_inside_the_margin_does_not_shift_the_due_date():
    # Conservative alarm 00:30 EDT on 12 March; 7 calendar days back is 5 March (EST).
    conservative_lra_at = utc(2026, 3, 12, 4, 30)
    far_expiry = utc(2026, 9, 1)
    assert depletion.refill_due_on(conservative_lra_at, far_expiry, NEW_YORK, 7) == date(2026, 3, 5)
    # 168 elapsed hours back would land at 23:30 EST on 4 March: the wrong day.
    assert (conservative_lra_at - timedelta(hours=168)).astimezone(NEW_YORK).date() == date(2026, 3, 4)


def test_due_date_is_the_clinic_zone_date_not_the_utc_date():
    conservative_lra_at = utc(2026, 4, 10, 2, 0)  # 22:00 EDT on 9 April
    assert depletion.refill_due_on(conservative_lra_at, utc(2026, 9, 1), NEW_YORK, 7) == date(2026, 4, 2)
    assert depletion.refill_due_on(conservative_lra_at, utc(2026, 9, 1), UTC, 7) == date(2026, 4, 3)


def test_due_date_takes_the_earlier_of_conservative_alarm_and_expiry():
    expiry = phoenix(2026, 3, 1, 9, 0)
    assert depletion.refill_due_on(phoenix(2026, 5, 6), expiry, PHOENIX, 7) == date(2026, 2, 22)
    assert depletion.refill_due_on(None, expiry, PHOENIX, 7) == date(2026, 2, 22)
    assert depletion.refill_due_on(phoenix(2026, 2, 1), expiry, PHOENIX, 7) == date(2026, 1, 25)


# The same fill written with the clinic's zone instead of UTC (as a form or a service may hand it
# over) must give the same instants. Python adds a timedelta to a zoned datetime on the wall clock
# and subtracts two datetimes of the same zone on the wall clock, so across a daylight-saving
# change the projection is off by an hour — after the autumn change, an hour *late*.
def test_alarm_for_fill_recorded_in_clinic_time_is_not_an_hour_late_after_fall_back():
    # Filled 09:00 EDT on 1 September; clocks fall back on 1 November.
    in_clinic_time = fill("40", new_york(2026, 9, 1, 9, 0), rate("600", "2000"))
    in_utc = fill("40", utc(2026, 9, 1, 13, 0), rate("600", "2000"))
    # 126 days 16 h of elapsed time: midnight EST on 6 January 2027
    assert depletion.time_reaching(in_utc, LRA_ML) == new_york(2027, 1, 6, 0, 0)
    assert depletion.time_reaching(in_clinic_time, LRA_ML) == new_york(2027, 1, 6, 0, 0)


def test_alarm_for_fill_recorded_in_clinic_time_counts_elapsed_hours_across_spring_forward():
    in_clinic_time = fill("20", new_york(2026, 2, 2, 9, 0), rate("600", "2000"))
    assert depletion.time_reaching(in_clinic_time, LRA_ML) == new_york(2026, 4, 3, 10, 0)


def test_drug_for_fill_recorded_in_clinic_time_expires_after_180_elapsed_days():
    expires_at = depletion.drug_expires_at(new_york(2026, 9, 1, 9, 0), MAX_DAYS_IN_PUMP, None, NEW_YORK)
    assert expires_at == utc(2026, 9, 1, 13, 0) + timedelta(days=180)  # 08:00 EST, not 09:00


def test_expected_residual_at_refill_recorded_in_clinic_time_counts_the_extra_hour_after_fall_back():
    in_clinic_time = fill("40", new_york(2026, 9, 1, 9, 0), rate("600", "2000"))
    # 90 days and 1 hour elapsed between 09:00 EDT on 1 September and 09:00 EST on 30 November
    assert depletion.expected_residual_ml(in_clinic_time, new_york(2026, 11, 30, 9, 0)) == Decimal("12.9875")


# --- Refill visit: discrepancy rule --------------------------------------------------------------


@pytest.mark.parametrize(
    ("reservoir_ml", "expected_ml", "tolerance_ml"),
    [
        pytest.param("20", "4", "1", id="20 mL pump, small residual: 1 mL"),
        pytest.param("20", "6.6", "1", id="20 mL pump, 15% below 1 mL"),
        pytest.param("20", "10", "1.5", id="20 mL pump, 15% above 1 mL"),
        pytest.param("18", "4", "1", id="legacy 18 mL pump counts as small"),
        pytest.param("40", "8", "2", id="40 mL pump, small residual: 2 mL"),
        pytest.param("40", "20", "3", id="40 mL pump, 15% above 2 mL"),
        pytest.param("30", "4", "2", id="Codman 30 mL counts as large"),
        pytest.param("40", "0", "2", id="expected empty"),
    ],
)
def test_discrepancy_tolerance_is_the_larger_of_the_absolute_floor_and_15_percent(
    reservoir_ml, expected_ml, tolerance_ml
):
    tolerance = depletion.discrepancy_tolerance_ml(Decimal(expected_ml), Decimal(reservoir_ml))
    assert tolerance == Decimal(tolerance_ml)


@pytest.mark.parametrize(
    ("reservoir_ml", "expected_ml", "aspirated_ml", "discrepant"),
    [
        pytest.param("20", "4", "3", False, id="20 mL: 1 mL short is within tolerance"),
        pytest.param("20", "4", "2.9", True, id="20 mL: 1.1 mL short is flagged"),
        pytest.param("20", "4", "5.1", True, id="20 mL: 1.1 mL over is flagged"),
        pytest.param("40", "8", "6", False, id="40 mL: 2 mL short is within tolerance"),
        pytest.param("40", "8", "5.9", True, id="40 mL: 2.1 mL short is flagged"),
        pytest.param("40", "8.5", "10.5", False, id="worked example: 2 mL over is within tolerance"),
        pytest.param("40", "20", "23", False, id="40 mL: 15% of 20 mL allows 3 mL"),
        pytest.param("40", "20", "16.9", True, id="40 mL: 3.1 mL short of 20 mL is flagged"),
        pytest.param("40", "0", "2.5", True, id="late refill: drug left where none was expected"),
    ],
)
def test_aspirated_residual_out_of_tolerance_is_flagged(reservoir_ml, expected_ml, aspirated_ml, discrepant):
    tolerance = depletion.discrepancy_tolerance_ml(Decimal(expected_ml), Decimal(reservoir_ml))
    assert depletion.is_discrepant(Decimal(expected_ml), Decimal(aspirated_ml), tolerance) is discrepant


def test_first_fill_is_never_discrepant():
    assert depletion.is_discrepant(None, Decimal("40"), Decimal("2")) is False


def test_pump_delivering_8_percent_over_is_flagged_at_a_16_week_refill():
    refilled_at = WORKED_FILLED_AT + timedelta(days=112)
    expected = depletion.expected_residual_ml(worked_example(), refilled_at)
    aspirated = depletion.volume_at(worked_example(), refilled_at, Decimal("1.08"))
    assert expected == Decimal("6.4")
    assert aspirated == Decimal("3.712")
    tolerance = depletion.discrepancy_tolerance_ml(expected, Decimal("40"))
    assert depletion.is_discrepant(expected, aspirated, tolerance) is True


# --- Properties ------------------------------------------------------------------------------------

PROPERTY = settings(
    derandomize=True,
    database=None,
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

FIRST_FILL = utc(2026, 1, 5, 16, 0)
ZONES = [PHOENIX, NEW_YORK, ZoneInfo("Europe/London"), ZoneInfo("Australia/Lord_Howe"), ZoneInfo("Pacific/Auckland")]

volumes = st.decimals(min_value="0", max_value="40", places=2)
rates = st.decimals(min_value="0", max_value="3", places=4)
thresholds = st.decimals(min_value="0", max_value="6", places=1)
factors = st.decimals(min_value="1", max_value="1.5", places=3)


@st.composite
def fills(draw, max_programs=5):
    """A fill (stored in UTC) drained by up to ``max_programs`` programs over the following 200 days."""
    filled_at = FIRST_FILL + timedelta(minutes=draw(st.integers(0, 365 * 24 * 60)))
    count = draw(st.integers(1, max_programs))
    changes = sorted(draw(st.lists(st.integers(1, 200 * 24 * 60), min_size=count - 1, max_size=count - 1, unique=True)))
    starts = [filled_at] + [filled_at + timedelta(minutes=m) for m in changes]
    segments = tuple(Segment(start, draw(rates)) for start in starts)
    return Fill(filled_at=filled_at, volume_ml=draw(volumes), segments=segments)


def no_later(earlier, later):
    """``earlier`` ≤ ``later`` where None means never."""
    return later is None or (earlier is not None and earlier <= later)


@PROPERTY
@given(pump_fill=fills(), threshold=thresholds, data=st.data())
def test_more_dose_never_moves_the_alarm_later(pump_fill, threshold, data):
    index = data.draw(st.integers(0, len(pump_fill.segments) - 1))
    extra = data.draw(st.decimals(min_value="0", max_value="2", places=4))
    segments = list(pump_fill.segments)
    segments[index] = Segment(segments[index].start, segments[index].rate_ml_per_day + extra)
    more = Fill(pump_fill.filled_at, pump_fill.volume_ml, tuple(segments))
    assert no_later(depletion.time_reaching(more, threshold), depletion.time_reaching(pump_fill, threshold))


@PROPERTY
@given(pump_fill=fills(), threshold=thresholds, factor=factors)
def test_conservative_alarm_is_never_later_than_the_nominal_one(pump_fill, threshold, factor):
    conservative = depletion.time_reaching(pump_fill, threshold, factor)
    nominal = depletion.time_reaching(pump_fill, threshold)
    assert no_later(conservative, nominal)


@PROPERTY
@given(pump_fill=fills(), threshold=thresholds)
def test_reservoir_never_empties_before_the_alarm(pump_fill, threshold):
    assert no_later(depletion.time_reaching(pump_fill, threshold), depletion.time_reaching(pump_fill, Decimal("0")))


@PROPERTY
@given(pump_fill=fills(), threshold=thresholds, factor=factors)
def test_alarm_is_never_late_and_at_most_a_second_early(pump_fill, threshold, factor):
    reached_at = depletion.time_reaching(pump_fill, threshold, factor)
    if reached_at is None:
        assert depletion.volume_at(pump_fill, pump_fill.filled_at + timedelta(days=2000), factor) > threshold - NOISE_ML
        return
    if reached_at == pump_fill.filled_at:
        return
    assert depletion.volume_at(pump_fill, reached_at, factor) >= threshold - NOISE_ML
    assert depletion.volume_at(pump_fill, reached_at + timedelta(seconds=1), factor) <= threshold + NOISE_ML


@PROPERTY
@given(
    pump_fill=fills(),
    offsets=st.lists(st.integers(-86400, 400 * 86400), min_size=2, max_size=12),
    factor=factors,
)
def test_reservoir_never_rises_and_never_goes_negative_between_refills(pump_fill, offsets, factor):
    instants = [pump_fill.filled_at + timedelta(seconds=s) for s in sorted(offsets)]
    for scale in (Decimal("1"), factor):
        volumes_seen = [depletion.volume_at(pump_fill, at, scale) for at in instants]
        assert all(Decimal("0") <= v <= pump_fill.volume_ml for v in volumes_seen)
        assert all(later <= earlier for earlier, later in pairwise(volumes_seen))


@PROPERTY
@given(pump_fill=fills(), seconds=st.integers(0, 400 * 86400), factor=factors)
def test_conservative_volume_is_never_above_the_nominal_volume(pump_fill, seconds, factor):
    at = pump_fill.filled_at + timedelta(seconds=seconds)
    assert depletion.volume_at(pump_fill, at, factor) <= depletion.volume_at(pump_fill, at)


@PROPERTY
@given(pump_fill=fills(), seconds=st.integers(-86400, 400 * 86400))
def test_expected_residual_is_the_nominal_volume(pump_fill, seconds):
    at = pump_fill.filled_at + timedelta(seconds=seconds)
    assert depletion.expected_residual_ml(pump_fill, at) == depletion.volume_at(pump_fill, at)


@PROPERTY
@given(
    pump_fill=fills(),
    zone=st.sampled_from(ZONES),
    vial_expires_on=st.none() | st.dates(min_value=date(2026, 1, 1), max_value=date(2028, 1, 1)),
    max_days_in_pump=st.integers(1, 180),
    margin=st.integers(0, 30),
    delivery=st.none() | st.decimals(min_value="0.5", max_value="1.5", places=3),
)
def test_refill_is_never_due_later_than_the_drug_expiry_date_minus_the_margin(
    pump_fill, zone, vial_expires_on, max_days_in_pump, margin, delivery
):
    projection = project(
        pump_fill,
        zone=zone,
        vial_expires_on=vial_expires_on,
        max_days_in_pump=max_days_in_pump,
        margin=margin,
        measured_delivery_ratio=delivery,
    )
    assert projection.refill_due_on <= projection.drug_expires_at.astimezone(zone).date() - timedelta(days=margin)
    if projection.conservative_lra_at is not None:
        latest = projection.conservative_lra_at.astimezone(zone).date() - timedelta(days=margin)
        assert projection.refill_due_on <= latest
    assert projection.critical_from <= projection.drug_expires_at
    assert projection.overdue_from.astimezone(zone).time() == datetime.min.time()


@PROPERTY
@given(
    pump_fill=fills(),
    zone=st.sampled_from(ZONES),
    margin=st.integers(0, 30),
    offsets=st.lists(st.integers(-10 * 86400, 400 * 86400), min_size=2, max_size=12),
)
def test_status_only_ever_grows_more_urgent_as_time_passes(pump_fill, zone, margin, offsets):
    projection = project(pump_fill, zone=zone, margin=margin)
    urgency = {
        depletion.STOPPED: -1,
        depletion.OK: 0,
        depletion.DUE_SOON: 1,
        depletion.OVERDUE: 2,
        depletion.CRITICAL: 3,
    }
    seen = [urgency[projection.status(pump_fill.filled_at + timedelta(seconds=s))] for s in sorted(offsets)]
    assert all(later >= earlier for earlier, later in pairwise(seen))
    assert (set(seen) == {-1}) is projection.is_stopped
