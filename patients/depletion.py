"""The depletion projection: pure functions over plain values. No Django imports.

CLINICAL.md ("The projection") is the specification. Conventions:

- instants are timezone-aware datetimes; arithmetic on them is elapsed time (UTC);
- the only calendar arithmetic is the refill due date, done on dates in the clinic's zone; the
  clinic's closed days come in as a plain predicate over dates (``is_closed``), never a model;
- volumes (mL), doses (mcg/day) and rates (mL/day) are Decimals;
- every rounding leans to the safe side: alarm and empty times are rounded down to the second
  (earlier), volumes now are never below zero.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_FLOOR, Decimal
from zoneinfo import ZoneInfo

ZERO = Decimal("0")
ONE = Decimal("1")
HUNDRED = Decimal("100")
SECONDS_PER_DAY = Decimal("86400")

OK = "ok"
DUE_SOON = "due_soon"
OVERDUE = "overdue"
CRITICAL = "critical"
STOPPED = "stopped"
STATUSES = (CRITICAL, OVERDUE, DUE_SOON, STOPPED, OK)  # most urgent first


@dataclass(frozen=True)
class Segment:
    """A program in effect from ``start``: it consumes ``rate_ml_per_day`` until the next one."""

    start: datetime
    rate_ml_per_day: Decimal


@dataclass(frozen=True)
class Fill:
    """A reservoir filled to ``volume_ml`` at ``filled_at``, then drained by ``segments``.

    ``segments`` are ordered by start; the first starts at ``filled_at`` (a segment starting
    earlier is treated as starting at the fill).
    """

    filled_at: datetime
    volume_ml: Decimal
    segments: tuple[Segment, ...]


def rate_ml_per_day(daily_dose_mcg: Decimal, bolus_mcg_per_day: Decimal, concentration_mcg_per_ml: Decimal) -> Decimal:
    """Volume rate of a program: (daily dose + worst-case bolus allowance) / concentration."""
    if concentration_mcg_per_ml <= 0:
        raise ValueError("concentration must be positive")
    return (daily_dose_mcg + bolus_mcg_per_day) / concentration_mcg_per_ml


def _days(delta: timedelta) -> Decimal:
    return (Decimal(delta.days) * SECONDS_PER_DAY + Decimal(delta.seconds) + Decimal(delta.microseconds) / 10**6) / (
        SECONDS_PER_DAY
    )


def _floor_seconds(seconds: Decimal) -> timedelta:
    """A duration in seconds as a timedelta rounded down to the whole second (the earlier, safe side)."""
    seconds = seconds.to_integral_value(rounding=ROUND_FLOOR)
    return timedelta(seconds=int(seconds))


def _pieces(fill: Fill, until: datetime | None = None):
    """(start, end or None, rate) for each segment of the fill, clipped to the fill time."""
    segments = sorted(fill.segments, key=lambda s: s.start)
    for i, seg in enumerate(segments):
        # Elapsed time: in UTC, so a daylight-saving change in the clinic's zone moves nothing.
        start = max(seg.start, fill.filled_at).astimezone(UTC)
        end = segments[i + 1].start.astimezone(UTC) if i + 1 < len(segments) else None
        if end is not None and end <= start:
            continue
        yield start, end, seg.rate_ml_per_day


def consumed_ml(fill: Fill, at: datetime, factor: Decimal = ONE) -> Decimal:
    """Volume the programs would have drawn from the fill until ``at`` (rates times ``factor``)."""
    total = ZERO
    at = at.astimezone(UTC)
    for start, end, rate in _pieces(fill):
        if at <= start:
            break
        stop = at if end is None or at < end else end
        total += rate * factor * _days(stop - start)
    return total


def volume_at(fill: Fill, at: datetime, factor: Decimal = ONE) -> Decimal:
    """Estimated reservoir volume at ``at``: never below zero, never above the fill."""
    if at <= fill.filled_at:
        return fill.volume_ml
    return max(fill.volume_ml - consumed_ml(fill, at, factor), ZERO)


def time_reaching(fill: Fill, threshold_ml: Decimal, factor: Decimal = ONE) -> datetime | None:
    """First instant the volume falls to ``threshold_ml``; None if the programs never get there.

    A threshold at or above the fill is reached at the fill itself.
    """
    remaining = fill.volume_ml - threshold_ml
    if remaining <= 0:
        return fill.filled_at
    for start, end, rate in _pieces(fill):
        effective = rate * factor
        if effective <= 0:
            continue
        span = None if end is None else _days(end - start)
        needed = remaining / effective
        if span is None or needed <= span:
            return start + _floor_seconds(remaining * SECONDS_PER_DAY / effective)
        remaining -= effective * span
    return None


def expected_residual_ml(fill: Fill, at: datetime) -> Decimal:
    """What should be left to aspirate at a refill at ``at``: max(V(t), 0) at nominal rates."""
    return volume_at(fill, at)


def start_of_day(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time.min, tzinfo=zone)


def drug_expires_at(
    filled_at: datetime, max_days_in_pump: int, vial_expires_on: date | None, zone: ZoneInfo
) -> datetime:
    """min(fill + max days in pump, the vial's date): a vial dated for a day expires at that
    day's start in the clinic's zone (the safe side)."""
    stability = filled_at.astimezone(UTC) + timedelta(days=max_days_in_pump)
    if vial_expires_on is None:
        return stability
    return min(stability, start_of_day(vial_expires_on, zone))


def margin_days(clinic_margin: int, patient_extra: int, high_risk_extra: int, high_risk: bool) -> int:
    """The clinic's margin, plus the patient's own extra days, plus the high-risk extra when flagged."""
    return clinic_margin + patient_extra + (high_risk_extra if high_risk else 0)


def refill_due_on(conservative_lra_at: datetime | None, drug_expires: datetime, zone: ZoneInfo, margin: int) -> date:
    """Clinic-zone date of min(conservative LRA, drug expiry), minus the margin in calendar days."""
    bound = drug_expires if conservative_lra_at is None else min(conservative_lra_at, drug_expires)
    return bound.astimezone(zone).date() - timedelta(days=margin)


ClosedDays = Callable[[date], bool]
# Longer than any closure a clinic may enter (a year) plus the weekends and holidays around it.
LOOK_BACK_DAYS = 800


def last_open_day_on_or_before(day: date, is_closed: ClosedDays | None) -> date:
    """The last day on or before ``day`` that the clinic is open (CLINICAL.md "Closed days"):
    refills happen in clinic, so a due date on a closed day is a refill that would happen late.
    ``is_closed`` None means every day is open."""
    if is_closed is None:
        return day
    candidate = day
    for _ in range(LOOK_BACK_DAYS):
        if not is_closed(candidate):
            return candidate
        candidate -= timedelta(days=1)
    raise ValueError(f"no open day in the {LOOK_BACK_DAYS} days up to {day}: check the clinic's calendar")


def status_instants(due_on: date, zone: ZoneInfo, reminder_days: int) -> tuple[datetime, datetime]:
    """(overdue_from, due_soon_from) of a (moved) due date: overdue once the clinic's date is past
    it, due soon ``reminder_days`` before it, both at the start of a day in the clinic's zone."""
    return start_of_day(due_on + timedelta(days=1), zone), start_of_day(due_on - timedelta(days=reminder_days), zone)


def conservative_factor(overinfusion_allowance_pct: Decimal, delivery_ratio: Decimal | None) -> Decimal:
    """The larger of 1 + the clinic's over-infusion allowance and the pump's measured ratio."""
    factor = ONE + overinfusion_allowance_pct / HUNDRED
    if delivery_ratio is not None and delivery_ratio > factor:
        return delivery_ratio
    return factor


@dataclass(frozen=True)
class DeliverySample:
    """One refill interval that ended with a measured residual."""

    gone_ml: Decimal  # volume actually gone: fill − aspirated
    programmed_ml: Decimal  # what the programs should have drawn over the interval
    excluded: bool = False  # a documented discrepancy: left out of the ratio


def delivery_ratio(samples: Sequence[DeliverySample], last: int = 3, minimum: int = 2) -> Decimal | None:
    """Σ gone ÷ Σ programmed over the last ``last`` usable intervals (oldest first in ``samples``);
    None until ``minimum`` of them exist."""
    usable = [s for s in samples if not s.excluded and s.programmed_ml > 0]
    if len(usable) < minimum:
        return None
    recent = usable[-last:]
    programmed = sum((s.programmed_ml for s in recent), ZERO)
    return sum((s.gone_ml for s in recent), ZERO) / programmed


def discrepancy_tolerance_ml(
    expected_ml: Decimal,
    reservoir_ml: Decimal,
    *,
    small_reservoir_limit_ml: Decimal = Decimal("20"),
    small_tolerance_ml: Decimal = Decimal("1"),
    large_tolerance_ml: Decimal = Decimal("2"),
    pct: Decimal = Decimal("15"),
) -> Decimal:
    """max(1 mL for reservoirs up to 20 mL / 2 mL for larger, 15 % of expected) (Maino et al. 2017)."""
    absolute = small_tolerance_ml if reservoir_ml <= small_reservoir_limit_ml else large_tolerance_ml
    return max(absolute, expected_ml * pct / HUNDRED)


def is_discrepant(expected_ml: Decimal | None, aspirated_ml: Decimal, tolerance_ml: Decimal) -> bool:
    """A residual out of tolerance. A first fill (no expected residual) is never discrepant."""
    if expected_ml is None:
        return False
    return abs(aspirated_ml - expected_ml) > tolerance_ml


@dataclass(frozen=True)
class Projection:
    filled_at: datetime
    reservoir_at_fill_ml: Decimal
    rate_ml_per_day: Decimal  # nominal rate of the program in effect at ``computed_at``
    conservative_factor: Decimal
    lra_at: datetime | None
    empty_at: datetime | None
    conservative_lra_at: datetime | None
    drug_expires_at: datetime
    refill_due_on: date
    delivery_ratio: Decimal | None
    # The instants the status changes, so a database can judge it with plain comparisons.
    critical_from: datetime
    overdue_from: datetime
    due_soon_from: datetime
    is_stopped: bool
    computed_at: datetime
    # The due date before it moved to an open day (equal to ``refill_due_on`` when it did not).
    unmoved_refill_due_on: date | None = None

    @property
    def due_date_moved(self) -> bool:
        return self.unmoved_refill_due_on is not None and self.unmoved_refill_due_on != self.refill_due_on

    def status(self, now: datetime) -> str:
        return status_at(self, now)

    def reservoir_ml(self, fill: Fill, now: datetime) -> Decimal:
        return volume_at(fill, now)


def status_at(projection, now: datetime) -> str:
    """``stopped`` when the rate now is zero; ``critical`` from ``critical_hours`` before the
    conservative LRA time, or once the drug has expired; ``overdue`` once the clinic's date is
    past the due date; ``due_soon`` within the reminder window of it; else ``ok``.

    ``projection`` is a Projection or anything with the same four fields (the stored row).
    The one definition of status: the SQL annotation (patients/selectors.py) compares the same
    stored instants and is tested against this function.
    """
    if projection.is_stopped:
        return STOPPED
    if now >= projection.critical_from:
        return CRITICAL
    if now >= projection.overdue_from:
        return OVERDUE
    if now >= projection.due_soon_from:
        return DUE_SOON
    return OK


def rate_in_effect(fill: Fill, at: datetime) -> Decimal:
    rate = ZERO
    for start, _end, seg_rate in _pieces(fill):
        if start <= at:
            rate = seg_rate
    return rate


def project(
    fill: Fill,
    *,
    lra_ml: Decimal,
    max_days_in_pump: int,
    vial_expires_on: date | None,
    zone: ZoneInfo,
    overinfusion_allowance_pct: Decimal,
    margin: int,
    reminder_days: int,
    critical_hours: int,
    now: datetime,
    measured_delivery_ratio: Decimal | None = None,
    is_closed: ClosedDays | None = None,
) -> Projection:
    """Everything the clinic needs to know about one fill, judged with the program in effect now.

    ``is_closed``: the clinic's closed days; the due date moves to the last open day on or before
    it, and "due soon" and "overdue" count from the moved date. The critical window does not move:
    it is clock time before the conservative alarm, and the pump does not know the clinic is closed.
    """
    factor = conservative_factor(overinfusion_allowance_pct, measured_delivery_ratio)
    lra_at = time_reaching(fill, lra_ml)
    empty_at = time_reaching(fill, ZERO)
    conservative_lra_at = time_reaching(fill, lra_ml, factor)
    expires_at = drug_expires_at(fill.filled_at, max_days_in_pump, vial_expires_on, zone)
    unmoved_due_on = refill_due_on(conservative_lra_at, expires_at, zone, margin)
    due_on = last_open_day_on_or_before(unmoved_due_on, is_closed)
    overdue_from, due_soon_from = status_instants(due_on, zone, reminder_days)
    critical_from = expires_at
    if conservative_lra_at is not None:
        critical_from = min(expires_at, conservative_lra_at - timedelta(hours=critical_hours))
    rate_now = rate_in_effect(fill, max(now, fill.filled_at))
    return Projection(
        filled_at=fill.filled_at,
        reservoir_at_fill_ml=fill.volume_ml,
        rate_ml_per_day=rate_now,
        conservative_factor=factor,
        lra_at=lra_at,
        empty_at=empty_at,
        conservative_lra_at=conservative_lra_at,
        drug_expires_at=expires_at,
        refill_due_on=due_on,
        delivery_ratio=measured_delivery_ratio,
        critical_from=critical_from,
        overdue_from=overdue_from,
        due_soon_from=due_soon_from,
        is_stopped=rate_now == 0,
        computed_at=now,
        unmoved_refill_due_on=unmoved_due_on,
    )


def segments_from_programs(programs: Iterable[tuple[datetime, Decimal]]) -> tuple[Segment, ...]:
    """Segments from (effective_at, rate mL/day) pairs."""
    return tuple(Segment(start=at, rate_ml_per_day=rate) for at, rate in sorted(programs, key=lambda p: p[0]))
