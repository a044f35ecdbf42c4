"""The rota page (clinic admins), the staff page's "on call now", and on-call shifts in the feed."""

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.urls import reverse

from clinics import services as clinic_services
from clinics.models import Membership, Role, RotaOverride, Rotation

from .factories import ClinicFactory, member

NY = ZoneInfo("America/New_York")
NOW = datetime(2026, 3, 4, 10, tzinfo=NY)


@pytest.fixture
def ny_clinic(db):
    return ClinicFactory(name="Hudson Pump Clinic", timezone="America/New_York")


@pytest.fixture
def people(ny_clinic):
    users = {
        "nora": member(ny_clinic, Role.NURSE, username="nora", first_name="Nora", last_name="Quill"),
        "olive": member(ny_clinic, Role.NURSE, username="olive", first_name="Olive", last_name="Reyes"),
        "admin": member(ny_clinic, Role.CLINIC_ADMIN, username="ada"),
    }
    users["m"] = {m.user.username: m for m in Membership.objects.filter(clinic=ny_clinic).select_related("user")}
    return users


def build_rotation(client, clinic, people, **changes):
    rotation = Rotation.objects.get(clinic=clinic, role=Role.NURSE)
    data = {
        "name": "On-call nurse",
        "role": "nurse",
        "handover_weekday": "0",
        "handover_time": "08:00",
        "length_days": "7",
        "starts_on": "2026-03-02",
        f"turn_{people['m']['nora'].pk}": "1",
        f"turn_{people['m']['olive'].pk}": "2",
        **changes,
    }
    return client.post(reverse("clinic-rotation-edit", args=[clinic.pk, rotation.pk]), data)


@pytest.mark.django_db
def test_admin_builds_a_two_nurse_rotation_and_sees_eight_weeks_across_the_clock_change(client, ny_clinic, people):
    client.force_login(people["admin"])
    with time_machine.travel(datetime(2026, 3, 1, 10, tzinfo=NY), tick=False):  # the day before it starts
        response = build_rotation(client, ny_clinic, people)
        assert response.status_code == 302
        page = client.get(reverse("clinic-rota", args=[ny_clinic.pk])).content.decode()
    rotation = Rotation.objects.get(clinic=ny_clinic, role=Role.NURSE)
    assert rotation.member_ids == [people["m"]["nora"].pk, people["m"]["olive"].pk]
    assert rotation.history.order_by("-history_id").first().history_user == people["admin"]
    assert "Mon 9 Mar 2026 08:00" in page and "Sun 26 Apr 2026 11:00" in page  # 8 × 168 h from 1 March
    assert ">167<" in page  # Nora's week the clocks went forward is an hour short
    assert "<strong>Nobody</strong>" in page and "Nobody on call</strong> in the next 14 days" in page
    assert page.count("Nora Quill") >= 4 and page.count("Olive Reyes") >= 4


@pytest.mark.django_db
def test_two_members_with_the_same_turn_are_refused_and_nothing_changes(client, ny_clinic, people):
    client.force_login(people["admin"])
    response = build_rotation(client, ny_clinic, people, **{f"turn_{people['m']['olive'].pk}": "1"})
    assert "same turn" in response.content.decode()
    response = build_rotation(client, ny_clinic, people, starts_on="2026-03-03")  # a Tuesday
    assert "must be a Monday" in response.content.decode()
    assert Rotation.objects.get(clinic=ny_clinic, role=Role.NURSE).member_ids == []


@pytest.mark.django_db
def test_a_swap_typed_in_clinic_time_is_stored_as_that_instant(client, ny_clinic, people):
    client.force_login(people["admin"])
    rotation = Rotation.objects.get(clinic=ny_clinic, role=Role.NURSE)
    with time_machine.travel(NOW, tick=False):
        build_rotation(client, ny_clinic, people)
        response = client.post(
            reverse("clinic-rota-override-add", args=[ny_clinic.pk]),
            {
                "cover-rotation": rotation.pk,
                "cover-membership": people["m"]["olive"].pk,
                "cover-starts_at": "2026-03-08T01:00",  # the night the clocks go forward
                "cover-ends_at": "2026-03-08T09:00",
                "cover-reason": "swap",
            },
        )
        assert response.status_code == 302
        refused = client.post(
            reverse("clinic-rota-override-add", args=[ny_clinic.pk]),
            {
                "cover-rotation": rotation.pk,
                "cover-membership": people["m"]["olive"].pk,
                "cover-starts_at": "2026-03-09T09:00",
                "cover-ends_at": "2026-03-09T08:00",
            },
        )
    override = RotaOverride.objects.get()
    assert (override.starts_at, override.ends_at) == (
        datetime(2026, 3, 8, 6, tzinfo=ZoneInfo("UTC")),
        datetime(2026, 3, 8, 13, tzinfo=ZoneInfo("UTC")),
    )
    assert "The cover must end after it starts." in refused.content.decode()


@pytest.mark.django_db
def test_care_staff_cannot_open_the_rota_and_another_clinic_is_not_found(client, ny_clinic, people):
    client.force_login(people["nora"])
    assert client.get(reverse("clinic-rota", args=[ny_clinic.pk])).status_code == 403
    elsewhere = ClinicFactory(name="Elsewhere")
    client.force_login(people["admin"])
    assert client.get(reverse("clinic-rota", args=[elsewhere.pk])).status_code == 404
    other_rotation = Rotation.objects.filter(clinic=elsewhere).first()
    url = reverse("clinic-rotation-edit", args=[ny_clinic.pk, other_rotation.pk])
    assert client.get(url).status_code == 404


@pytest.mark.django_db
def test_staff_page_shows_who_is_on_call_now(client, ny_clinic, people):
    clinic_services.save_rotation(
        actor=people["admin"],
        clinic=ny_clinic,
        rotation=Rotation.objects.get(clinic=ny_clinic, role=Role.NURSE),
        name="On-call nurse",
        role=Role.NURSE,
        member_ids=[people["m"]["nora"].pk, people["m"]["olive"].pk],
        handover_weekday=0,
        handover_time=time(8),
        length_days=7,
        starts_on=date(2026, 3, 2),
        now=NOW,
    )
    client.force_login(people["admin"])
    with time_machine.travel(NOW, tick=False):
        page = client.get(reverse("clinic-staff", args=[ny_clinic.pk])).content.decode()
    assert "On-call nurse:</span>\n      Nora Quill" in page and "until Mon 9 Mar 08:00" in page
    assert page.count("On call now: On-call nurse") == 1


@pytest.mark.django_db
def test_her_calendar_feed_has_her_on_call_weeks_and_nothing_about_patients(client, ny_clinic, people):
    clinic_services.save_rotation(
        actor=people["admin"],
        clinic=ny_clinic,
        rotation=Rotation.objects.get(clinic=ny_clinic, role=Role.NURSE),
        name="On-call nurse",
        role=Role.NURSE,
        member_ids=[people["m"]["nora"].pk, people["m"]["olive"].pk],
        handover_weekday=0,
        handover_time=time(8),
        length_days=7,
        starts_on=date(2026, 3, 2),
        now=NOW,
    )
    token = clinic_services.issue_calendar_feed(user=people["olive"])
    with time_machine.travel(NOW, tick=False):
        body = client.get(reverse("calendar-feed", args=[token])).content.decode()
    # Olive's weeks: 9–16 March (08:00 EDT = 12:00 UTC), 23–30 March, …
    assert "DTSTART:20260309T120000Z\r\nDTEND:20260316T120000Z" in body
    assert "DTSTART:20260323T120000Z" in body and "DTSTART:20260316T120000Z" not in body
    assert "SUMMARY:On call: On-call nurse (Hudson Pump Clinic)" in body
    assert body.count("BEGIN:VEVENT") == 4  # 9, 23 March; 6, 20 April (8 weeks ahead)
