"""The report page's period chooser: a month, a quarter or a chosen range of days, in the
clinic's zone. With nothing chosen the period is the last full month."""

from __future__ import annotations

import re
from datetime import date, timedelta

from django import forms

from .figures import Period

MONTH = re.compile(r"^(\d{4})-(\d{2})$")
QUARTER = re.compile(r"^(\d{4})-Q([1-4])$")
# A range longer than this would be a different question (and a slower page).
MAX_RANGE_DAYS = 366 * 5


def last_full_month(today: date) -> Period:
    last_day = today.replace(day=1) - timedelta(days=1)
    return Period.month(last_day.year, last_day.month)


def recent_quarters(today: date, count: int = 12) -> list[tuple[str, str]]:
    """(value, label) of the quarter in progress and the ``count - 1`` before it, newest first."""
    year, quarter = today.year, (today.month - 1) // 3 + 1
    choices = []
    for _ in range(count):
        choices.append((f"{year}-Q{quarter}", f"Q{quarter} {year}"))
        year, quarter = (year, quarter - 1) if quarter > 1 else (year - 1, 4)
    return choices


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, attrs=None):
        super().__init__(attrs=attrs, format="%Y-%m-%d")


class MonthInput(forms.TextInput):
    input_type = "month"


class PeriodForm(forms.Form):
    kind = forms.ChoiceField(
        label="Period",
        choices=[("month", "Month"), ("quarter", "Quarter"), ("range", "Chosen dates")],
        initial="month",
    )
    month = forms.CharField(label="Month", required=False, widget=MonthInput(attrs={"placeholder": "YYYY-MM"}))
    quarter = forms.ChoiceField(label="Quarter", required=False)
    start = forms.DateField(label="From", required=False, widget=DateInput())
    end = forms.DateField(label="To (inclusive)", required=False, widget=DateInput())

    def __init__(self, *args, today: date, **kwargs):
        super().__init__(*args, **kwargs)
        self.today = today
        default = last_full_month(today)
        self.fields["quarter"].choices = recent_quarters(today)
        self.fields["month"].initial = f"{default.start:%Y-%m}"
        self.fields["month"].widget.attrs["max"] = f"{today:%Y-%m}"
        self.fields["quarter"].initial = f"{default.start.year}-Q{(default.start.month - 1) // 3 + 1}"
        self.fields["start"].initial = default.start
        self.fields["end"].initial = default.end

    def clean(self):
        data = super().clean()
        kind = data.get("kind")
        if kind == "month":
            match = MONTH.match(data.get("month") or "")
            if not match or not 1 <= int(match[2]) <= 12:
                self.add_error("month", "Choose a month (YYYY-MM).")
            else:
                data["period"] = Period.month(int(match[1]), int(match[2]))
        elif kind == "quarter":
            match = QUARTER.match(data.get("quarter") or "")
            if not match:
                self.add_error("quarter", "Choose a quarter.")
            else:
                data["period"] = Period.quarter(int(match[1]), int(match[2]))
        elif kind == "range":
            start, end = data.get("start"), data.get("end")
            if start is None:
                self.add_error("start", "Give the first day.")
            if end is None:
                self.add_error("end", "Give the last day.")
            if start and end:
                if end < start:
                    self.add_error("end", "The last day comes before the first.")
                elif (end - start).days >= MAX_RANGE_DAYS:
                    self.add_error("end", "Choose at most five years.")
                else:
                    data["period"] = Period.between(start, end)
        period = data.get("period")
        if period is not None and period.start > self.today:
            self.add_error(None, "The period has not begun yet.")
            data.pop("period")
        return data

    @property
    def period(self) -> Period:
        """The chosen period (the last full month when nothing was chosen)."""
        if self.is_bound and self.is_valid():
            return self.cleaned_data["period"]
        return last_full_month(self.today)
