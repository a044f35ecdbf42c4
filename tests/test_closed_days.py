"""Closed days move refill due dates (CLINICAL.md "Closed days"): the worked examples, the
properties of the move, and the stored projections following the clinic's calendar."""

from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from hypothesis import given, settings
from hypothesis import strategies as st

from clinics.calendar import ClinicCalendar
from clinics.models import ClinicClosure, Role
from patients import depletion, services
from patients.models import PumpProjection

from .factories import WORKED_EXAMPLE_FILL, filled_pump, member

PHOENIX = ZoneInfo("America/Phoenix")
WEEKDAYS_ONLY = frozenset(range(5))


def calendar(*closures, country="", subdivision="", weekdays=WEEKDAYS_ONLY):
    return ClinicCalendar(
        zone=PHOENIX,
        opening_weekdays=weekdays,
        closures=tuple((first, last, "closure") for first, last in closures),
        holiday_country=country,
        holiday_subdivision=subdivision,
    )


def phoenix(*args):
    return datetime(*args, tzinfo=PHOENIX)


def worked_projection(is_closed, margin=7):
    """CLINICAL.md's worked example (40 mL of 2000 mcg/mL at 600 mcg/day, filled 2026-01-05 09:00)."""
    rate = depletion.rate_ml_per_day(Decimal(600), Decimal(0), Decimal(2000))
    fill = depletion.Fill(WORKED_EXAMPLE_FILL, Decimal(40), (depletion.Segment(WORKED_EXAMPLE_FILL, rate),))
    return depletion.project(
        fill,
        lra_ml=Decimal("2.0"),
        max_days_in_pump=180,
        vial_expires_on=None,
        zone=PHOENIX,
        overinfusion_allowance_pct=Decimal(5),
        margin=margin,
        reminder_days=14,
        critical_hours=48,
        now=WORKED_EXAMPLE_FILL,
        is_closed=is_closed,
    )


# --- CLINICAL.md's worked examples ---------------------------------------------------------------


def test_worked_example_due_on_a_wednesday_stays_april_29():
    projection = worked_projection(calendar())
    assert projection.refill_due_on == date(2026, 4, 29) == projection.unmoved_refill_due_on
    assert not projection.due_date_moved


def test_closure_april_27_to_30_moves_the_worked_example_to_friday_april_24():
    projection = worked_projection(calendar((date(2026, 4, 27), date(2026, 4, 30))))
    assert projection.unmoved_refill_due_on == date(2026, 4, 29)
    assert projection.refill_due_on == date(2026, 4, 24)
    assert projection.due_date_moved


def test_the_reminder_window_and_overdue_count_from_the_moved_date_the_critical_window_does_not_move():
    unmoved = worked_projection(None)
    moved = worked_projection(calendar((date(2026, 4, 27), date(2026, 4, 30))))
    assert moved.due_soon_from == phoenix(2026, 4, 10)  # 14 days before Friday 04-24
    assert moved.overdue_from == phoenix(2026, 4, 25)  # once the clinic's date is past 04-24
    assert unmoved.overdue_from == phoenix(2026, 4, 30)
    # The pump does not know the clinic is closed: 48 hours before the conservative alarm.
    assert moved.critical_from == unmoved.critical_from == phoenix(2026, 5, 4, 0, 14, 17)
    assert moved.status(phoenix(2026, 4, 27, 9)) == depletion.OVERDUE
    assert unmoved.status(phoenix(2026, 4, 27, 9)) == depletion.DUE_SOON


def test_a_due_date_on_sunday_november_29_moves_to_friday_november_27():
    assert depletion.last_open_day_on_or_before(date(2026, 11, 29), calendar()) == date(2026, 11, 27)


def test_a_margin_landing_on_sunday_april_26_moves_the_worked_example_to_friday_april_24():
    projection = worked_projection(calendar(), margin=10)
    assert (projection.unmoved_refill_due_on, projection.refill_due_on) == (date(2026, 4, 26), date(2026, 4, 24))


def test_with_us_federal_holidays_thanksgiving_november_26_moves_to_wednesday_november_25():
    us = calendar(country="US")
    assert us.why_closed(date(2026, 11, 26)) == "Thanksgiving Day"
    assert depletion.last_open_day_on_or_before(date(2026, 11, 26), us) == date(2026, 11, 25)
    # Without the holiday calendar Thanksgiving is an ordinary Thursday.
    assert depletion.last_open_day_on_or_before(date(2026, 11, 26), calendar()) == date(2026, 11, 26)


def test_a_state_holiday_counts_only_with_its_subdivision():
    # Cesar Chavez Day (March 31) is a California state holiday, not a federal one.
    assert calendar(country="US", subdivision="CA").is_closed(date(2026, 3, 31))
    assert not calendar(country="US").is_closed(date(2026, 3, 31))


def test_a_closure_across_a_weekend_moves_to_the_last_open_day_before_all_of_it():
    # Closed Monday 12-21 to Friday 01-01: a due date of Tuesday 12-29 moves to Friday 12-18.
    cal = calendar((date(2026, 12, 21), date(2027, 1, 1)))
    assert depletion.last_open_day_on_or_before(date(2026, 12, 29), cal) == date(2026, 12, 18)
    assert cal.why_closed(date(2026, 12, 26)) == "closure"
    assert cal.why_closed(date(2026, 12, 19)) == "Saturday"


def test_no_calendar_moves_nothing():
    assert depletion.last_open_day_on_or_before(date(2026, 11, 29), None) == date(2026, 11, 29)


# --- properties -----------------------------------------------------------------------------------

days = st.dates(min_value=date(2024, 1, 1), max_value=date(2030, 12, 31))
closures = st.lists(
    st.tuples(days, st.integers(min_value=0, max_value=40)).map(lambda c: (c[0], c[0] + timedelta(days=c[1]))),
    max_size=4,
)
weekdays = st.frozensets(st.integers(min_value=0, max_value=6), min_size=1)
countries = st.sampled_from(["", "US", "GB", "DE"])


@settings(max_examples=300, deadline=None)
@given(day=days, spans=closures, open_on=weekdays, country=countries)
def test_the_moved_date_is_open_never_later_and_no_open_day_lies_between(day, spans, open_on, country):
    cal = calendar(*spans, country=country, weekdays=open_on)
    moved = depletion.last_open_day_on_or_before(day, cal)
    assert not cal.is_closed(moved)
    assert moved <= day
    between = moved + timedelta(days=1)
    while between <= day:
        assert cal.is_closed(between), between
        between += timedelta(days=1)


@settings(max_examples=100, deadline=None)
@given(margin=st.integers(min_value=0, max_value=60), spans=closures, open_on=weekdays)
def test_a_projection_never_moves_the_critical_window_and_never_due_later(margin, spans, open_on):
    cal = calendar(*spans, weekdays=open_on)
    moved, unmoved = worked_projection(cal, margin), worked_projection(None, margin)
    assert moved.critical_from == unmoved.critical_from
    assert moved.refill_due_on <= unmoved.refill_due_on == moved.unmoved_refill_due_on
    assert moved.overdue_from <= unmoved.overdue_from and moved.due_soon_from <= unmoved.due_soon_from


# --- opening hours ----------------------------------------------------------------------------------


def test_the_clinic_opens_next_at_eight_on_its_next_open_day():
    us = calendar(country="US")
    assert us.is_open_at(phoenix(2026, 11, 25, 16, 59))
    assert not us.is_open_at(phoenix(2026, 11, 25, 17, 0))
    # Wednesday evening before Thanksgiving: Thursday is a holiday, so Friday 08:00.
    assert us.next_opening(phoenix(2026, 11, 25, 17, 30)) == phoenix(2026, 11, 27, 8, 0)
    # Saturday 02:00: Monday 08:00.
    assert us.next_opening(phoenix(2026, 11, 28, 2, 0)) == phoenix(2026, 11, 30, 8, 0)
    # Before opening on an open day: the same day at 08:00.
    assert us.next_opening(phoenix(2026, 11, 30, 6, 0)) == phoenix(2026, 11, 30, 8, 0)


# --- the stored projections follow the clinic's calendar ---------------------------------------------


@pytest.mark.django_db
def test_a_refill_stores_the_moved_due_date_of_the_clinic(clinic, nurse):
    clinic.refill_margin_days = 10
    clinic.save()
    pump = filled_pump(clinic, nurse)
    assert (pump.projection.unmoved_refill_due_on, pump.projection.refill_due_on) == (
        date(2026, 4, 26),
        date(2026, 4, 24),
    )


@pytest.mark.django_db
def test_entering_a_closure_moves_the_stored_due_dates_it_covers_and_removing_it_moves_them_back(clinic, nurse):
    admin = member(clinic, Role.CLINIC_ADMIN)
    pump = filled_pump(clinic, nurse)
    untouched = filled_pump(clinic, nurse, WORKED_EXAMPLE_FILL + timedelta(days=14))  # due 05-13
    now = WORKED_EXAMPLE_FILL + timedelta(days=30)
    closure = services.save_closure(
        clinic=clinic,
        actor=admin,
        first_day=date(2026, 4, 27),
        last_day=date(2026, 4, 30),
        reason="Staff leave",
        now=now,
    )
    stored = PumpProjection.objects.get(pump=pump)
    assert (stored.unmoved_refill_due_on, stored.refill_due_on) == (date(2026, 4, 29), date(2026, 4, 24))
    assert stored.due_soon_from == phoenix(2026, 4, 10) and stored.overdue_from == phoenix(2026, 4, 25)
    # Exactly what recomputing the pump from its whole record gives.
    full = services.compute_projection(pump, now)
    assert (stored.refill_due_on, stored.overdue_from, stored.due_soon_from, stored.critical_from) == (
        full.refill_due_on,
        full.overdue_from,
        full.due_soon_from,
        full.critical_from,
    )
    assert PumpProjection.objects.get(pump=untouched).refill_due_on == date(2026, 5, 13)
    assert closure.history.first().history_user == admin

    services.remove_closure(closure=closure, actor=admin, now=now)
    stored.refresh_from_db()
    assert stored.refill_due_on == date(2026, 4, 29) and stored.overdue_from == phoenix(2026, 4, 30)
    assert not ClinicClosure.objects.filter(clinic=clinic).exists()
    assert ClinicClosure.history.filter(history_type="-").count() == 1


@pytest.mark.django_db
def test_a_closure_that_moves_a_due_date_into_the_past_raises_the_overdue_alert_at_once(clinic, nurse):
    from alerts.models import Alert, AlertKind

    admin = member(clinic, Role.CLINIC_ADMIN)
    pump = filled_pump(clinic, nurse)
    now = phoenix(2026, 4, 27, 9)  # Monday: the pump is due Wednesday, not yet overdue
    with time_machine.travel(now, tick=False):
        services.save_closure(
            clinic=clinic, actor=admin, first_day=date(2026, 4, 27), last_day=date(2026, 4, 30), reason="Leave", now=now
        )
    assert Alert.objects.open().filter(pump=pump, kind=AlertKind.REFILL_OVERDUE).exists()


@pytest.mark.django_db
def test_a_closure_refuses_a_last_day_before_its_first_and_stores_nothing(clinic):
    admin = member(clinic, Role.CLINIC_ADMIN)
    with pytest.raises(services.Refusal) as refusal:
        services.save_closure(
            clinic=clinic, actor=admin, first_day=date(2026, 5, 2), last_day=date(2026, 5, 1), reason="Leave"
        )
    assert "last_day" in refusal.value.message_dict
    assert not ClinicClosure.objects.exists()


@pytest.mark.django_db
def test_moving_due_dates_costs_the_same_queries_for_3_and_30_pumps(clinic, other_clinic, nurse):
    from .factories import ClinicFactory

    now = WORKED_EXAMPLE_FILL + timedelta(days=1)

    def queries_of_a_closure(pumps):
        place = ClinicFactory(timezone="America/Phoenix")
        staff = member(place, Role.NURSE)
        for n in range(pumps):
            filled_pump(place, staff, WORKED_EXAMPLE_FILL + timedelta(days=n % 3))  # three due dates
        admin = member(place, Role.CLINIC_ADMIN)
        with CaptureQueriesContext(connection) as captured:
            services.save_closure(
                clinic=place, actor=admin, first_day=date(2026, 4, 27), last_day=date(2026, 5, 2), reason="x", now=now
            )
        moved = PumpProjection.objects.filter(pump__patient__clinic=place, refill_due_on=date(2026, 4, 24))
        assert moved.count() == pumps
        return len(captured)

    assert queries_of_a_closure(3) == queries_of_a_closure(30)
