"""How the page, the CSV and the digest show a figure: one formatting for all three.

Figures carry counts, shares and durations only (the reports/figures package); nothing here adds a
patient identifier. Nurses appear by full name in the workload breakdown: staff, not patients.
"""

from __future__ import annotations

import calendar
import csv
import io
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from itertools import groupby

from django.utils.text import slugify

from .figures import Figure, Period, Report

NO_DATA = "—"


def display(value) -> str:
    """A value as people read it: integers as they are, decimals to one place, no data as a dash."""
    if value is None:
        return NO_DATA
    if isinstance(value, int):
        return f"{value:,}"
    rounded = Decimal(value).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    return f"{int(rounded):,}" if rounded == rounded.to_integral() else f"{rounded:,}"


def with_unit(value, unit: str) -> str:
    if value is None:
        return NO_DATA
    return f"{display(value)}{unit}" if unit == "%" else f"{display(value)} {unit}"


def plain(value) -> str:
    """A value for a machine (CSV, chart data): no separators, the figure's own precision, empty when None."""
    if value is None:
        return ""
    return str(value)


def chart_number(value):
    return None if value is None else float(value)


def trend_month(period: Period) -> Period:
    """The last full month the 12-month trends end with: the period's last month when the period
    runs to that month's end, else the month before it."""
    end = period.end
    if end.day == calendar.monthrange(end.year, end.month)[1]:
        return Period.month(end.year, end.month)
    previous = end.replace(day=1) - timedelta(days=1)
    return Period.month(previous.year, previous.month)


@dataclass(frozen=True)
class FigureView:
    """A figure with its value and breakdown as shown (``display`` without the unit)."""

    figure: Figure
    display: str
    breakdown: tuple[tuple[str, str], ...]

    def __getattr__(self, name):
        return getattr(self.figure, name)


@dataclass(frozen=True)
class Section:
    name: str
    slug: str
    figures: tuple[FigureView, ...]


def view_of(figure: Figure) -> FigureView:
    return FigureView(
        figure=figure,
        display=display(figure.value),
        breakdown=tuple((label, with_unit(value, figure.unit)) for label, value in figure.breakdown),
    )


def sections(report: Report) -> list[Section]:
    """Figures grouped by section, in the report's order."""
    return [
        Section(name, slugify(name), tuple(view_of(f) for f in figures))
        for name, figures in groupby(report.figures, key=lambda f: f.section)
    ]


@dataclass(frozen=True)
class LateRefillView:
    refill_id: int
    pump_id: int
    local_date: date
    after: str


def late_refills(report: Report) -> list[LateRefillView]:
    """The late refills by the clinic-zone date they were done on, oldest first."""
    zone = report.clinic.zone
    rows = sorted(report.late_refills, key=lambda r: r.performed_at)
    return [LateRefillView(r.refill_id, r.pump_id, r.performed_at.astimezone(zone).date(), r.after) for r in rows]


def iso_period(period: Period) -> str:
    """An ISO 8601 interval of dates: 2026-11-01/2026-11-30."""
    return f"{period.start.isoformat()}/{period.end.isoformat()}"


FIGURE_COLUMNS = [
    "period",
    "period_start",
    "period_end",
    "figure_key",
    "section",
    "label",
    "breakdown",
    "value",
    "unit",
]
TREND_COLUMNS = ["month", "month_start", "figure_key", "section", "label", "value", "unit"]


def _csv(rows) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for row in rows:
        writer.writerow(row)
    # The byte-order mark tells spreadsheet programs the file is UTF-8 (nurses' accented names).
    return "\ufeff" + buffer.getvalue()


def figures_csv(report: Report) -> str:
    """One row per figure, then one per breakdown row under it (its label in ``breakdown``)."""
    period = report.period
    head = [iso_period(period), period.start.isoformat(), period.end.isoformat()]

    def rows():
        yield FIGURE_COLUMNS
        for f in report.figures:
            yield [*head, f.key, f.section, f.label, "", plain(f.value), f.unit]
            for label, value in f.breakdown:
                yield [*head, f.key, f.section, f.label, label, plain(value), f.unit]

    return _csv(rows())


def trends_csv(report: Report, trends: dict[str, list[tuple[date, object]]]) -> str:
    """One row per figure and month (``month`` as ISO 8601 YYYY-MM)."""
    by_key = {f.key: f for f in report.figures}

    def rows():
        yield TREND_COLUMNS
        for key, points in trends.items():
            f = by_key.get(key)
            if f is None:
                continue
            for start, value in points:
                yield [f"{start:%Y-%m}", start.isoformat(), key, f.section, f.label, plain(value), f.unit]

    return _csv(rows())


def chart_data(report: Report, trends: dict[str, list[tuple[date, object]]]) -> dict:
    """The trend charts' data for json_script: per figure key, its label, unit and points."""
    by_key = {f.key: f for f in report.figures}
    return {
        key: {
            "label": by_key[key].label,
            "unit": by_key[key].unit,
            "months": [f"{start:%Y-%m}" for start, _ in points],
            "values": [chart_number(value) for _, value in points],
        }
        for key, points in trends.items()
        if key in by_key and by_key[key].trend
    }
