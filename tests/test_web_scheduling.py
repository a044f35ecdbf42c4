"""Booking appointments (with the service's warnings), marking them done, missed or cancelled,
and the clinic's week view."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.urls import reverse

from patients import services
from patients.models import Appointment

from .factories import PatientFactory, PumpFactory, filled_pump

PHX = ZoneInfo("America/Phoenix")
NOW = datetime(2026, 4, 1, 10, tzinfo=PHX)


def at(*args):
    return datetime(*args, tzinfo=PHX)


@pytest.fixture
def pump(clinic, nurse):
    """Filled 2026-01-05 09:00 as in CLINICAL.md's worked example: refill due 2026-04-29."""
    pump = filled_pump(clinic, nurse, at(2026, 1, 5, 9), patient={"family_name": "Bookley"})
    return pump


@pytest.mark.django_db
def test_booking_form_suggests_the_due_date_and_the_assigned_nurse(client, nurse, pump):
    pump.assigned_nurse = nurse
    pump.save()
    client.force_login(nurse)
    with time_machine.travel(NOW, tick=False):
        text = client.get(reverse("appointment-create", args=[pump.pk])).content.decode()
    assert 'value="2026-04-29T09:00"' in text
    assert f'<option value="{nurse.pk}" selected>' in text


@pytest.mark.django_db
def test_booking_before_the_due_date_returns_to_the_worklist(client, nurse, pump):
    client.force_login(nurse)
    with time_machine.travel(NOW, tick=False):
        response = client.post(
            reverse("appointment-create", args=[pump.pk]),
            {
                "kind": "refill",
                "scheduled_for": "2026-04-27T09:30",
                "assigned_to": nurse.pk,
                "notes": "",
                "next": "/?status=due_soon",
            },
            follow=True,
        )
    assert response.redirect_chain[-1][0] == "/?status=due_soon"
    appointment = Appointment.objects.get()
    assert appointment.scheduled_for == at(2026, 4, 27, 9, 30) and appointment.assigned_to == nurse
    text = response.content.decode()
    assert "Refill booked for 2026-04-27 09:30" in text
    assert "after the pump&#x27;s refill due date" not in text


@pytest.mark.django_db
def test_booking_after_the_due_date_warns(client, nurse, pump):
    client.force_login(nurse)
    with time_machine.travel(NOW, tick=False):
        response = client.post(
            reverse("appointment-create", args=[pump.pk]),
            {"kind": "refill", "scheduled_for": "2026-05-01T09:00", "assigned_to": "", "notes": ""},
            follow=True,
        )
    assert "This refill is booked after the pump&#x27;s refill due date (2026-04-29)." in response.content.decode()
    assert Appointment.objects.count() == 1


@pytest.mark.django_db
def test_booking_refuses_staff_of_another_clinic(client, nurse, other_clinic, pump):
    from clinics.models import Role

    from .factories import member

    stranger = member(other_clinic, Role.NURSE, username="stranger")
    client.force_login(nurse)
    with time_machine.travel(NOW, tick=False):
        response = client.post(
            reverse("appointment-create", args=[pump.pk]),
            {"kind": "refill", "scheduled_for": "2026-04-27T09:00", "assigned_to": stranger.pk},
        )
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    assert not Appointment.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("action", "status"), [("complete", "completed"), ("missed", "missed"), ("cancel", "cancelled")]
)
def test_appointment_status_buttons(client, nurse, pump, action, status):
    with time_machine.travel(NOW, tick=False):
        appointment, _ = services.schedule_appointment(
            pump=pump, actor=nurse, kind="refill", scheduled_for=at(2026, 4, 27, 9)
        )
        client.force_login(nurse)
        response = client.post(reverse("appointment-status", args=[appointment.pk, action]))
        again = client.post(reverse("appointment-status", args=[appointment.pk, action]), follow=True)
    assert response.status_code == 302 and response["Location"] == reverse("pump-detail", args=[pump.pk])
    appointment.refresh_from_db()
    assert appointment.status == status
    assert "This appointment is already" in again.content.decode()


@pytest.mark.django_db
def test_appointment_status_needs_post_care_staff_and_the_same_clinic(client, nurse, clinic_admin, other_clinic, pump):
    from clinics.models import Role

    from .factories import member

    with time_machine.travel(NOW, tick=False):
        appointment, _ = services.schedule_appointment(
            pump=pump, actor=nurse, kind="refill", scheduled_for=at(2026, 4, 27, 9)
        )
        url = reverse("appointment-status", args=[appointment.pk, "complete"])
        client.force_login(nurse)
        assert client.get(url).status_code == 405
        client.force_login(clinic_admin)
        assert client.post(url).status_code == 403
        client.force_login(member(other_clinic, Role.NURSE, username="elsewhere"))
        assert client.post(url).status_code == 404
    appointment.refresh_from_db()
    assert appointment.status == "scheduled"


@pytest.mark.django_db
def test_week_view_shows_the_clinics_appointments_in_clinic_time(client, nurse, pump, other_clinic):
    with time_machine.travel(NOW, tick=False):
        services.schedule_appointment(pump=pump, actor=nurse, kind="refill", scheduled_for=at(2026, 4, 29, 8, 15))
        services.schedule_appointment(pump=pump, actor=nurse, kind="device_check", scheduled_for=at(2026, 5, 6, 8, 15))
        theirs = PumpFactory(patient=PatientFactory(clinic=other_clinic, family_name="Otherclinic"))
        services.schedule_appointment(pump=theirs, actor=None, kind="refill", scheduled_for=at(2026, 4, 29, 9))
        client.force_login(nurse)
        response = client.get(reverse("schedule-week"), {"week": "2026-04-29"})
    text = response.content.decode()
    assert response.status_code == 200
    assert "week of 27 Apr 2026" in text
    assert "Wednesday 29 Apr" in text and "08:15" in text and "Bookley" in text
    assert "Device check" not in text  # next week
    assert "Otherclinic" not in text
    assert "?week=2026-05-04" in text and "?week=2026-04-20" in text
