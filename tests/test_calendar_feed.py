"""A nurse's private calendar feed: her appointments, no patient identifiers, revocable."""

from datetime import datetime
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.urls import reverse

from clinics import services as clinic_services
from clinics.models import AccessLog
from patients import services

from .factories import PatientFactory, PumpFactory, first_fill_order

PHX = ZoneInfo("America/Phoenix")
NOW = datetime(2026, 4, 1, 9, tzinfo=PHX)


@pytest.fixture
def booked(clinic, nurse):
    pump = PumpFactory(
        patient=PatientFactory(clinic=clinic, given_name="Xanthe", family_name="Ploughright", mrn="CAL-4411"),
        serial_number="CALSN77",
    )
    services.record_refill(
        pump=pump,
        actor=nurse,
        performed_at=datetime(2026, 1, 5, 9, tzinfo=PHX),
        aspirated_ml=D(0),
        volume_added_ml=D(40),
        concentration_mcg_per_ml=D(2000),
        daily_dose_mcg=D(600),
        now=NOW,
        **first_fill_order(pump, nurse, {}),
    )
    appointment, _ = services.schedule_appointment(
        pump=pump,
        actor=nurse,
        kind="refill",
        assigned_to=nurse,
        scheduled_for=datetime(2026, 4, 27, 10, tzinfo=PHX),
        now=NOW,
    )
    return appointment


@pytest.mark.django_db
def test_nurse_subscribes_and_her_feed_lists_her_appointment_without_patient_identifiers(client, nurse, booked):
    client.force_login(nurse)
    page = client.post(reverse("calendar-issue"))
    url = page.context["new_url"]
    path = url.removeprefix("http://127.0.0.1:8000")
    client.logout()
    with time_machine.travel(NOW, tick=False):
        response = client.get(path)  # calendar apps fetch without a session
    body = response.content.decode()
    assert response.status_code == 200 and response["Content-Type"].startswith("text/calendar")
    assert "BEGIN:VEVENT" in body and f"UID:{booked.reference}@itb-tracker" in body
    assert "DTSTART:20260427T170000Z" in body
    for identifier in ("Xanthe", "Ploughright", "CAL-4411", "CALSN77", "1970"):
        assert identifier not in body
    assert AccessLog.objects.filter(user=nurse, action="feed").count() == 1


@pytest.mark.django_db
def test_revoked_or_replaced_link_stops_working(client, nurse, booked):
    old = clinic_services.issue_calendar_feed(user=nurse)
    new = clinic_services.issue_calendar_feed(user=nurse)
    assert client.get(reverse("calendar-feed", args=[old])).status_code == 404
    assert client.get(reverse("calendar-feed", args=[new])).status_code == 200
    client.force_login(nurse)
    client.post(reverse("calendar-revoke"))
    client.logout()
    assert client.get(reverse("calendar-feed", args=[new])).status_code == 404


@pytest.mark.django_db
def test_deactivated_user_feed_stops_working(client, nurse, booked):
    token = clinic_services.issue_calendar_feed(user=nurse)
    nurse.is_active = False
    nurse.save()
    assert client.get(reverse("calendar-feed", args=[token])).status_code == 404
