"""The 12-month trend (``monthly_trend``): one query for all the months wherever a figure is a
count over time-stamped rows, the month's own queries elsewhere; each month is its report's."""

from __future__ import annotations

from datetime import date, datetime

from django.db.models import (
    Case,
    Count,
    F,
    IntegerField,
    Q,
    Value,
    When,
)
from django.db.models.functions import TruncDate
from django.utils import timezone

from clinics.models import Clinic
from patients.models import Pump

from .definitions import (
    SPECS,
    FigureValue,
    Period,
)
from .sections import (
    NURSE,
    _alert_times,
    _alerts,
    _appointment_counts,
    _appointment_values,
    _appointments,
    _conclusions,
    _count_by,
    _days_empty,
    _failed_notifications,
    _failed_values,
    _margins,
    _nurse_refills,
    _per_100_values,
    _pump_alerts,
    _refill_count_values,
    _refill_counts,
    _refills,
    _review_values,
    _rota_gap_figures,
    _urgent,
    _urgent_counts,
    _urgent_values,
    _workload_values,
    pumps_in_service_q,
)

# --- the trend: one query per figure for all the months where the figure is a count over rows ------


def _month_index(column: str, bounds: list[tuple[datetime, datetime]]) -> Case:
    """The index of the month whose bounds hold ``column``: the same ``start ≤ moment < end`` as
    a month's report (``Period.bounds``), so a month is exactly its report's period."""
    return Case(
        *(
            When(**{f"{column}__gte": start, f"{column}__lt": end}, then=Value(i))
            for i, (start, end) in enumerate(bounds)
        ),
        output_field=IntegerField(),
    )


def _per_month(rows, column: str, bounds, counts: dict) -> list[dict]:
    """One query: the ``counts`` (``Count`` aggregates) over ``rows`` for each month; a month
    without rows counts 0, as an aggregate over no rows does."""
    found = {
        row.pop("month_index"): row
        for row in rows.annotate(month_index=_month_index(column, bounds))
        .order_by()
        .values("month_index")
        .annotate(**counts)
    }
    return [found.get(i, dict.fromkeys(counts, 0)) for i in range(len(bounds))]


def _counted_per_month(rows, column: str, bounds, *columns) -> list[list[tuple]]:
    """One query: the (*columns, count) rows of each month."""
    found: list[list[tuple]] = [[] for _ in bounds]
    for month, *row in _count_by(rows.annotate(month_index=_month_index(column, bounds)), "month_index", *columns):
        found[month].append(tuple(row))
    return found


def _trend_values(clinic: Clinic, periods: list[Period], now: datetime) -> list[dict[str, FigureValue]]:
    """Each month's values, as its report computes them (devices left out). The counts (and
    shares of counts) over time-stamped rows take one query for all the months, grouped by month
    (eight queries; the pumps in service, one conditional count per month); the percentiles
    (margins, times to acknowledge and resolve: three queries), the empty days (two: fills
    overlapping the month, the current fills up to ``now``) and the rota gaps (three) are
    computed month by month."""
    zone = clinic.zone
    bounds = [period.bounds(zone) for period in periods]
    first, last = bounds[0][0], bounds[-1][1]
    late = Q(prior_lra_at__lt=F("performed_at"))
    refills = _per_month(
        _refills(clinic, first, last).annotate(local_day=TruncDate("performed_at", tzinfo=zone)),
        "performed_at",
        bounds,
        {
            **_refill_counts(),
            "after_alarm": Count("pk", filter=late),
            "after_empty": Count("pk", filter=late & Q(prior_empty_at__lt=F("performed_at"))),
        },
    )
    appointments = _per_month(_appointments(clinic, first, last), "scheduled_for", bounds, _appointment_counts())
    in_service = Pump.objects.filter(patient__clinic=clinic).aggregate(
        **{f"m{i}": Count("pk", filter=pumps_in_service_q(period)) for i, period in enumerate(periods)}
    )
    alerts = _alerts(clinic, first, last)
    by_kind = _counted_per_month(_pump_alerts(alerts), "raised_at", bounds, "kind")
    urgent = _per_month(_urgent(alerts), "raised_at", bounds, _urgent_counts())
    failed = _counted_per_month(_failed_notifications(clinic, first, last), "created_at", bounds, "channel")
    nurses = _counted_per_month(_nurse_refills(clinic, first, last), "performed_at", bounds, *NURSE)
    conclusions = _counted_per_month(_conclusions(clinic, first, last), "concluded_at", bounds, "outcome")

    months = []
    for i, (period, (start, end)) in enumerate(zip(periods, bounds, strict=True)):
        values: dict[str, FigureValue] = {}
        breakdowns: dict[str, tuple] = {}
        _refill_count_values(refills[i], values)
        values["refills_after_alarm"] = refills[i]["after_alarm"]
        values["refills_after_empty"] = refills[i]["after_empty"]
        _margins(_refills(clinic, start, end), values)
        values["days_empty"] = _days_empty(clinic, start, end, now) if start < now else None
        _appointment_values(appointments[i], values)
        _per_100_values(in_service[f"m{i}"], dict(by_kind[i]), values, breakdowns)
        _alert_times(_alerts(clinic, start, end), values, breakdowns)
        _urgent_values(urgent[i], values)
        _failed_values(dict(failed[i]), values, breakdowns)
        _rota_gap_figures(clinic, start, end, values, breakdowns)
        _workload_values(nurses[i], period, values, breakdowns)
        _review_values(dict(conclusions[i]), values, breakdowns)
        months.append(values)
    return months


def monthly_trend(
    clinic: Clinic, last_month: Period, months: int = 12, now: datetime | None = None
) -> dict[str, list[tuple[date, FigureValue]]]:
    """key -> [(month start, value), …] for the ``months`` months ending with ``last_month``'s
    month, oldest first; only figures with a trend. Each month's value is the one its own
    report gives, in a constant number of queries whatever the clinic's size: 8 + 8 × months
    (``_trend_values``)."""
    now = now or timezone.now()
    starts = []
    year, month = last_month.start.year, last_month.start.month
    for _ in range(months):
        starts.append((year, month))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    starts.reverse()
    periods = [Period.month(year, month) for year, month in starts]
    trend: dict[str, list[tuple[date, FigureValue]]] = {spec.key: [] for spec in SPECS if spec.trend}
    for period, values in zip(periods, _trend_values(clinic, periods, now), strict=True):
        for key, series in trend.items():
            series.append((period.start, values.get(key)))
    return trend
