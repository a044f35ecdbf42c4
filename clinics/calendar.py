"""A clinic's calendar as plain values: which days it is closed, and when it is open.

The projection core (``patients.depletion``) takes a ``ClinicCalendar`` only as its
``is_closed`` predicate over dates; nothing there sees a model. Public holidays come from the
maintained ``holidays`` package (country and subdivision chosen by the clinic admin).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays

from .models import WEEKDAYS, Clinic, ClinicClosure


@dataclass(frozen=True)
class ClinicCalendar:
    zone: ZoneInfo
    opening_weekdays: frozenset[int]
    opens_at: time = time(8, 0)
    closes_at: time = time(17, 0)
    closures: tuple[tuple[date, date, str], ...] = ()
    holiday_country: str = ""
    holiday_subdivision: str = ""
    _holidays: object = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        if self.holiday_country:
            calendar = holidays.country_holidays(self.holiday_country, subdiv=self.holiday_subdivision or None)
            object.__setattr__(self, "_holidays", calendar)

    def why_closed(self, day: date) -> str:
        """Why the clinic is closed on ``day`` ("" when it is open): the closure's reason, the
        holiday's name, or the weekday."""
        for first, last, reason in self.closures:
            if first <= day <= last:
                return reason
        if self._holidays is not None and day in self._holidays:
            return self._holidays.get(day)
        if day.weekday() not in self.opening_weekdays:
            return WEEKDAYS[day.weekday()]
        return ""

    def is_closed(self, day: date) -> bool:
        return bool(self.why_closed(day))

    __call__ = is_closed  # a ClinicCalendar is the projection core's ``is_closed`` predicate

    def is_open_at(self, instant: datetime) -> bool:
        """Within opening hours on an open day, in the clinic's zone."""
        local = instant.astimezone(self.zone)
        return not self.is_closed(local.date()) and self.opens_at <= local.time() < self.closes_at

    def next_opening(self, instant: datetime) -> datetime:
        """``instant`` when the clinic is open then, else when it next opens (the start of opening
        hours on the next open day)."""
        if self.is_open_at(instant):
            return instant
        local = instant.astimezone(self.zone)
        day = local.date() if local.time() < self.opens_at else local.date() + timedelta(days=1)
        for _ in range(800):
            if not self.is_closed(day):
                return datetime.combine(day, self.opens_at, tzinfo=self.zone)
            day += timedelta(days=1)
        raise ValueError("the clinic has no open day in the next 800 days")


def closures_by_clinic(clinic_ids: Iterable[int], since: date | None = None) -> dict[int, list]:
    """Closures of these clinics (ending on or after ``since``), in one query."""
    rows = ClinicClosure.objects.filter(clinic_id__in=set(clinic_ids))
    if since is not None:
        rows = rows.filter(last_day__gte=since)
    found: dict[int, list] = {}
    for clinic_id, first, last, reason in rows.order_by("first_day").values_list(
        "clinic_id", "first_day", "last_day", "reason"
    ):
        found.setdefault(clinic_id, []).append((first, last, reason))
    return found


def calendar_of(clinic: Clinic, closures: Iterable[tuple[date, date, str]] | None = None) -> ClinicCalendar:
    """The clinic's calendar; its closures are read (one query) unless given."""
    if closures is None:
        closures = closures_by_clinic([clinic.pk]).get(clinic.pk, [])
    return ClinicCalendar(
        zone=clinic.zone,
        opening_weekdays=frozenset(clinic.opening_weekdays),
        opens_at=clinic.opens_at,
        closes_at=clinic.closes_at,
        closures=tuple(closures),
        holiday_country=clinic.holiday_country,
        holiday_subdivision=clinic.holiday_subdivision,
    )


def calendars_of(clinics: Iterable[Clinic]) -> dict[int, ClinicCalendar]:
    """Calendars of several clinics with their closures read in one query."""
    clinics = list(clinics)
    closures = closures_by_clinic(c.pk for c in clinics)
    return {c.pk: calendar_of(c, closures.get(c.pk, [])) for c in clinics}
