"""The report's shapes: ``Period``, ``Figure``, ``LateRefill``, ``Report`` and every figure's
specification (``SPECS``: key, label, unit, section, whether it has a trend)."""

from __future__ import annotations

import calendar as _calendar
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from clinics.models import Clinic

FigureValue = Decimal | int | None


@dataclass(frozen=True)
class Period:
    """Days ``start`` to ``end``, both inclusive, in the clinic's zone."""

    start: date
    end: date
    label: str

    @classmethod
    def month(cls, year: int, month: int) -> Period:
        last = _calendar.monthrange(year, month)[1]
        return cls(date(year, month, 1), date(year, month, last), date(year, month, 1).strftime("%B %Y"))

    @classmethod
    def quarter(cls, year: int, q: int) -> Period:
        if q not in (1, 2, 3, 4):
            raise ValueError("quarter must be 1 to 4")
        first = 3 * (q - 1) + 1
        last = _calendar.monthrange(year, first + 2)[1]
        return cls(date(year, first, 1), date(year, first + 2, last), f"Q{q} {year}")

    @classmethod
    def between(cls, start: date, end: date) -> Period:
        if end < start:
            raise ValueError("the period ends before it starts")
        return cls(start, end, f"{start.isoformat()} – {end.isoformat()}")

    def bounds(self, tz: ZoneInfo) -> tuple[datetime, datetime]:
        """Aware [start 00:00, day after end 00:00) in ``tz``: a period crossing a daylight-saving
        change is one hour shorter or longer in elapsed time, as the clinic lived it."""
        return (
            datetime.combine(self.start, time.min, tzinfo=tz),
            datetime.combine(self.end + timedelta(days=1), time.min, tzinfo=tz),
        )

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


@dataclass(frozen=True)
class Figure:
    key: str
    section: str
    label: str
    value: FigureValue
    unit: str
    caption: str
    breakdown: tuple[tuple[str, FigureValue], ...] = ()
    trend: bool = True


@dataclass(frozen=True)
class LateRefill:
    """A refill done after the pump's own alarm time (``after="alarm"``) or after its projected
    empty time (``after="empty"``). Ids only: the page links them for clinic admins."""

    refill_id: int
    pump_id: int
    performed_at: datetime
    after: str  # "alarm" | "empty"


@dataclass(frozen=True)
class Report:
    clinic: Clinic
    period: Period
    figures: tuple[Figure, ...]
    late_refills: tuple[LateRefill, ...] = field(default=())

    def figure(self, key: str) -> Figure:
        for figure in self.figures:
            if figure.key == key:
                return figure
        raise KeyError(key)


@dataclass(frozen=True)
class _Spec:
    key: str
    section: str
    label: str
    unit: str
    caption: str
    trend: bool = True


# The figures in the order the page shows them. Keys are stable (CSV columns, chart ids).
SPECS: tuple[_Spec, ...] = (
    _Spec("refills_count", "Refills", "Refills performed", "refills", "Refills recorded in the period."),
    _Spec(
        "refills_on_time_share",
        "Refills",
        "Refills on time",
        "%",
        "Share of refills done on or before the due date in force just before them.",
    ),
    _Spec(
        "margin_median_days",
        "Margin",
        "Margin at refill (median)",
        "days",
        "Half the refills were done at least this many days before the pump's low-reservoir alarm.",
    ),
    _Spec(
        "margin_p10_days",
        "Margin",
        "Margin at refill (10th percentile)",
        "days",
        "One refill in ten was done with less margin than this before the alarm (negative: after it).",
    ),
    _Spec(
        "refills_after_alarm",
        "Margin",
        "Refills after the alarm time",
        "refills",
        "Refills done after the pump's projected low-reservoir alarm time. The goal is zero.",
    ),
    _Spec(
        "refills_after_empty",
        "Margin",
        "Refills after a projected empty reservoir",
        "refills",
        "Refills done after the reservoir was projected to be empty. The goal is zero.",
    ),
    _Spec(
        "days_empty",
        "Empty days",
        "Days with an empty reservoir",
        "days",
        "Sum over pumps of the days their reservoir was projected empty in the period.",
    ),
    _Spec(
        "discrepancy_share",
        "Discrepancies",
        "Refills with a residual discrepancy",
        "%",
        "Share of refills whose aspirated residual was out of tolerance.",
    ),
    _Spec(
        "review_conclusions",
        "Discrepancies",
        "Physician-review conclusions",
        "reviews",
        "Physician reviews concluded in the period, by outcome.",
    ),
    _Spec(
        "appointments_kept",
        "Appointments",
        "Refill appointments kept",
        "appointments",
        "Refill appointments scheduled in the period and completed.",
    ),
    _Spec(
        "appointments_missed",
        "Appointments",
        "Refill appointments missed",
        "appointments",
        "Refill appointments scheduled in the period that the patient missed.",
    ),
    _Spec(
        "appointments_cancelled",
        "Appointments",
        "Refill appointments cancelled",
        "appointments",
        "Refill appointments scheduled in the period that were cancelled.",
    ),
    _Spec(
        "alerts_per_100_pumps",
        "Alerting",
        "Alerts per 100 pumps",
        "alerts per 100 pumps",
        "Alerts raised in the period for every 100 pumps in service, by kind.",
    ),
    _Spec(
        "acknowledge_minutes_median",
        "Alerting",
        "Time to acknowledge (median)",
        "minutes",
        "Half the alerts were acknowledged within this time, by severity.",
    ),
    _Spec(
        "acknowledge_minutes_p90",
        "Alerting",
        "Time to acknowledge (90th percentile)",
        "minutes",
        "Nine alerts in ten were acknowledged within this time, by severity.",
    ),
    _Spec(
        "resolve_minutes_median",
        "Alerting",
        "Time to resolve (median)",
        "minutes",
        "Half the alerts were resolved within this time, by severity.",
    ),
    _Spec(
        "resolve_minutes_p90",
        "Alerting",
        "Time to resolve (90th percentile)",
        "minutes",
        "Nine alerts in ten were resolved within this time, by severity.",
    ),
    _Spec(
        "urgent_acknowledged_15min_share",
        "Alerting",
        "Critical and emergency alerts acknowledged within 15 minutes",
        "%",
        "Share of critical and emergency alerts someone acknowledged within 15 minutes of being raised.",
    ),
    _Spec(
        "notifications_failed",
        "Alerting",
        "Notifications failed",
        "notifications",
        "Notifications that could not be delivered, by channel.",
    ),
    _Spec(
        "rota_gap_hours",
        "Alerting",
        "Hours with nobody on call",
        "hours",
        "Hours in the period when the on-call rota named nobody.",
    ),
    _Spec(
        "pumps_near_eri_unbooked",
        "Devices",
        "Pumps near replacement with none booked",
        "pumps",
        "Pumps within 180 days of their replacement indicator date (or past it) with no replacement booked.",
        trend=False,
    ),
    _Spec(
        "pumps_drifting",
        "Devices",
        "Pumps delivering more than programmed",
        "pumps",
        "Pumps whose measured delivery ratio is above the clinic's drift threshold.",
        trend=False,
    ),
    _Spec(
        "refills_per_nurse_month",
        "Workload",
        "Refills per nurse per month",
        "refills",
        "Refills each nurse performed, per month of the period.",
    ),
)

SPEC_BY_KEY = {spec.key: spec for spec in SPECS}


def _figures(values: dict[str, FigureValue], breakdowns: dict[str, tuple] | None = None) -> tuple[Figure, ...]:
    breakdowns = breakdowns or {}
    return tuple(
        Figure(
            key=spec.key,
            section=spec.section,
            label=spec.label,
            value=values.get(spec.key),
            unit=spec.unit,
            caption=spec.caption,
            breakdown=tuple(breakdowns.get(spec.key, ())),
            trend=spec.trend,
        )
        for spec in SPECS
    )
