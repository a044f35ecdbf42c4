"""Closure planning (CLINICAL.md "Closed days"): clinic admins enter a closure; the planner lists
every pump to refill before it with its latest safe refill day; booking on a closed day asks for
confirmation; the calendar settings move due dates."""

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.urls import reverse
from rest_framework.test import APIClient

from clinic_admin.planning import pumps_to_refill_before
from clinics.calendar import calendar_of
from clinics.models import ClinicClosure, Role
from patients import services
from patients.models import Appointment

from .factories import filled_pump, member

PHX = ZoneInfo("America/Phoenix")
NOW = datetime(2026, 4, 1, 10, tzinfo=PHX)
CLOSURE = {"first_day": "2026-04-27", "last_day": "2026-04-30", "reason": "Staff leave"}


def at(*args):
    return datetime(*args, tzinfo=PHX)


@pytest.fixture
def pumps(clinic, nurse):
    """The worked example and its neighbours (margin 7 days, closed 04-27 to 04-30)."""
    return {
        # due Wed 04-29 (conservative alarm 05-06): due during the closure
        "due_inside": filled_pump(clinic, nurse, at(2026, 1, 5, 9), patient={"family_name": "Inside"}),
        # due Sun 04-26, alarm Sun 05-03 00:14: before the last day plus the margin
        "alarm_inside": filled_pump(clinic, nurse, at(2026, 1, 2, 9), patient={"family_name": "Alarm"}),
        # vial dated 2026-05-04: drug expiry inside the closure plus the margin
        "expiry_inside": filled_pump(
            clinic,
            nurse,
            at(2026, 3, 2, 9),
            patient={"family_name": "Expiry"},
            refill={"drug_expires_on": date(2026, 5, 4)},
        ),
        # due Wed 05-13, alarm 05-20: after the closure plus the margin
        "later": filled_pump(clinic, nurse, at(2026, 1, 19, 9), patient={"family_name": "Later"}),
        # due Tue 04-14: refilled long before the closure matters
        "earlier": filled_pump(clinic, nurse, at(2025, 12, 21, 9), patient={"family_name": "Earlier"}),
    }


def enter_closure(clinic, **fields):
    admin = member(clinic, Role.CLINIC_ADMIN)
    values = {"first_day": date(2026, 4, 27), "last_day": date(2026, 4, 30), "reason": "Staff leave", **fields}
    return services.save_closure(clinic=clinic, actor=admin, now=NOW, **values)


@pytest.mark.django_db
def test_the_planner_lists_pumps_due_or_alarming_or_expiring_in_the_closure_with_their_latest_safe_day(clinic, pumps):
    closure = enter_closure(clinic)
    planned = {p.pump.pk: p for p in pumps_to_refill_before(clinic, closure, calendar_of(clinic))}
    names = {name for name, pump in pumps.items() if pump.pk in planned}
    assert names == {"due_inside", "alarm_inside", "expiry_inside"}
    due_inside = planned[pumps["due_inside"].pk]
    assert due_inside.latest_safe_day == date(2026, 4, 24)  # the Friday before the closure
    assert due_inside.unmoved_due_on == date(2026, 4, 29)
    assert due_inside.reasons[0] == "due Wed 04-29, during the closure"
    alarm = planned[pumps["alarm_inside"].pk]
    assert alarm.latest_safe_day == date(2026, 4, 24)  # due Sunday 04-26: the Friday before
    assert any(r.startswith("alarm (conservative) Sun 05-03") for r in alarm.reasons)
    expiry = planned[pumps["expiry_inside"].pk]
    assert any(r.startswith("drug expires Mon 05-04 00:00") for r in expiry.reasons)
    assert expiry.latest_safe_day == date(2026, 4, 27) - timedelta(days=3)  # due Mon 04-27, closed


@pytest.mark.django_db
def test_a_booked_refill_shows_whether_it_is_in_time(clinic, nurse, pumps):
    closure = enter_closure(clinic)
    services.schedule_appointment(
        pump=pumps["due_inside"], actor=nurse, kind="refill", scheduled_for=at(2026, 4, 23, 9), now=NOW
    )
    services.schedule_appointment(
        pump=pumps["alarm_inside"],
        actor=nurse,
        kind="refill",
        scheduled_for=at(2026, 4, 28, 9),
        closed_day_confirmed=True,
        now=NOW,
    )
    planned = {p.pump.pk: p for p in pumps_to_refill_before(clinic, closure, calendar_of(clinic))}
    assert planned[pumps["due_inside"].pk].booked_in_time
    assert not planned[pumps["alarm_inside"].pk].booked_in_time


@pytest.mark.django_db
def test_an_admin_enters_a_closure_and_sees_the_pumps_to_refill_before_it(client, clinic, clinic_admin, pumps):
    client.force_login(clinic_admin)
    with time_machine.travel(NOW, tick=False):
        response = client.post(reverse("clinic-closures", args=[clinic.pk]), CLOSURE, follow=True)
    closure = ClinicClosure.objects.get(clinic=clinic)
    assert response.redirect_chain[-1][0] == reverse("clinic-closure", args=[clinic.pk, closure.pk])
    page = response.content.decode()
    assert 'id="planned-count">3<' in page
    assert "Inside" in page and "Alarm" in page and "Expiry" in page and "Later" not in page
    assert "Fri 2026-04-24" in page and "moved from Wed 04-29 (closed)" in page
    assert "a nurse books it" in page  # admins do not record care (DESIGN.md): no Book button
    assert closure.history.first().history_user == clinic_admin
    pumps["due_inside"].projection.refresh_from_db()
    assert pumps["due_inside"].projection.refill_due_on == date(2026, 4, 24)


@pytest.mark.django_db
def test_a_nurse_reads_the_planner_and_books_from_it_but_cannot_enter_closures(client, clinic, nurse, pumps):
    closure = enter_closure(clinic)
    client.force_login(nurse)
    url = reverse("clinic-closure", args=[clinic.pk, closure.pk])
    with time_machine.travel(NOW, tick=False):
        page = client.get(url).content.decode()
        refused = client.post(reverse("clinic-closures", args=[clinic.pk]), CLOSURE)
    book = reverse("appointment-create", args=[pumps["due_inside"].pk])
    assert f'href="{book}?kind=refill&amp;next=' in page
    assert refused.status_code == 403
    assert ClinicClosure.objects.count() == 1


@pytest.mark.django_db
def test_another_clinics_closure_does_not_exist_for_its_admin(client, clinic, other_clinic):
    closure = enter_closure(clinic)
    client.force_login(member(other_clinic, Role.CLINIC_ADMIN))
    assert client.get(reverse("clinic-closure", args=[clinic.pk, closure.pk])).status_code == 404
    assert client.get(reverse("clinic-closure", args=[other_clinic.pk, closure.pk])).status_code == 404
    assert client.post(reverse("clinic-closure-remove", args=[clinic.pk, closure.pk])).status_code == 404
    assert ClinicClosure.objects.filter(pk=closure.pk).exists()


@pytest.mark.django_db
def test_a_closure_with_its_last_day_first_is_refused_with_a_field_message(client, clinic, clinic_admin):
    client.force_login(clinic_admin)
    response = client.post(
        reverse("clinic-closures", args=[clinic.pk]), {**CLOSURE, "first_day": "2026-05-02", "last_day": "2026-05-01"}
    )
    assert response.status_code == 200
    assert "The last day is on or after the first day." in response.content.decode()
    assert not ClinicClosure.objects.exists()


@pytest.mark.django_db
def test_removing_a_closure_moves_the_due_dates_back(client, clinic, clinic_admin, pumps):
    closure = enter_closure(clinic)
    client.force_login(clinic_admin)
    response = client.post(reverse("clinic-closure-remove", args=[clinic.pk, closure.pk]))
    assert response.status_code == 302
    pumps["due_inside"].projection.refresh_from_db()
    assert pumps["due_inside"].projection.refill_due_on == date(2026, 4, 29)


# --- booking on a closed day ----------------------------------------------------------------------


@pytest.mark.django_db
def test_booking_on_a_closed_day_asks_for_confirmation_then_books(client, clinic, nurse, pumps):
    pump = pumps["due_inside"]
    enter_closure(clinic)
    client.force_login(nurse)
    url = reverse("appointment-create", args=[pump.pk])
    form = {"kind": "refill", "scheduled_for": "2026-04-28T09:00", "assigned_to": "", "notes": ""}
    with time_machine.travel(NOW, tick=False):
        asked = client.post(url, form)
        page = asked.content.decode()
        assert asked.status_code == 200
        assert "The clinic is closed on Tue 2026-04-28 (Staff leave)." in page
        assert 'type="checkbox" name="closed_day_confirmed"' in page
        assert not Appointment.objects.exists()
        booked = client.post(url, {**form, "closed_day_confirmed": "on"})
    assert booked.status_code == 302
    assert Appointment.objects.get().scheduled_for == at(2026, 4, 28, 9)


@pytest.mark.django_db
def test_booking_on_a_saturday_through_the_api_needs_closed_day_confirmed(clinic, nurse, pumps):
    pump = pumps["due_inside"]
    api = APIClient()
    api.force_authenticate(nurse)
    url = reverse("api-pump-appointments", args=[pump.pk])
    body = {"kind": "refill", "scheduled_for": "2026-04-25T10:00:00-07:00"}
    with time_machine.travel(NOW, tick=False):
        refused = api.post(url, body, format="json")
        booked = api.post(url, {**body, "closed_day_confirmed": True}, format="json")
    assert refused.status_code == 400
    assert "closed on Sat 2026-04-25 (Saturday)" in refused.json()["scheduled_for"][0]
    assert booked.status_code == 201


@pytest.mark.django_db
def test_the_booking_form_suggests_the_next_open_day_once_the_due_date_has_passed(client, clinic, nurse, pumps):
    client.force_login(nurse)
    with time_machine.travel(at(2026, 5, 1, 10), tick=False):  # Friday, after the 04-29 due date
        page = client.get(reverse("appointment-create", args=[pumps["due_inside"].pk])).content.decode()
    assert 'value="2026-05-04T09:00"' in page  # Monday, not Saturday


# --- the calendar settings ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_choosing_us_holidays_moves_a_thanksgiving_due_date_to_wednesday(clinic, clinic_admin, nurse):
    # Filled 2026-08-04: conservative alarm 2026-12-03 00:14, due Thursday 2026-11-26 (Thanksgiving).
    pump = filled_pump(clinic, nurse, at(2026, 8, 4, 9))
    assert pump.projection.refill_due_on == date(2026, 11, 26)
    services.update_clinic_settings(clinic=clinic, actor=clinic_admin, holiday_country="US", now=at(2026, 8, 5))
    pump.projection.refresh_from_db()
    assert (pump.projection.unmoved_refill_due_on, pump.projection.refill_due_on) == (
        date(2026, 11, 26),
        date(2026, 11, 25),
    )


@pytest.mark.django_db
def test_the_settings_page_saves_opening_days_and_holidays_and_refuses_an_unknown_subdivision(
    client, clinic, clinic_admin
):
    from .test_clinic_admin import settings_form

    client.force_login(clinic_admin)
    url = reverse("clinic-settings", args=[clinic.pk])
    data = settings_form(clinic, holiday_country="US", holiday_subdivision="ZZ")
    data["opening_weekdays"] = ["0", "1", "2", "3", "4", "5"]
    refused = client.post(url, data)
    assert "is not a subdivision of US" in refused.content.decode()
    data["holiday_subdivision"] = "AZ"
    assert client.post(url, data).status_code == 302
    clinic.refresh_from_db()
    assert clinic.opening_weekdays == [0, 1, 2, 3, 4, 5]
    assert (clinic.holiday_country, clinic.holiday_subdivision) == ("US", "AZ")


@pytest.mark.django_db
def test_the_week_schedule_marks_closed_days_and_links_the_closures(client, clinic, nurse):
    clinic.holiday_country = "US"
    clinic.save()
    enter_closure(clinic, first_day=date(2026, 11, 27), last_day=date(2026, 11, 27), reason="Staff leave")
    client.force_login(nurse)
    page = client.get(reverse("schedule-week"), {"week": "2026-11-23", "clinic": clinic.pk}).content.decode()
    assert "Clinic closed: Thanksgiving Day" in page
    assert "Clinic closed: Staff leave" in page
    assert page.count('class="small text-body-secondary closed-day">Clinic closed</div>') == 2  # Sat, Sun
    assert reverse("clinic-closures", args=[clinic.pk]) in page
    assert client.get(reverse("clinic-closures", args=[clinic.pk])).status_code == 200
