"""A clinic administrator builds a two-nurse on-call rotation in a real browser, sees the gap
before it starts on the banner, adds a swap, covers the gap, and reads the next 8 weeks."""

import re
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.utils import timezone
from playwright.sync_api import expect

from alerts.models import Alert, AlertKind
from clinics import rota
from clinics.models import Membership, Role, RotaOverride, Rotation

from ..factories import PASSWORD, ClinicFactory, member
from .conftest import log_in, screenshot

NEW_YORK = ZoneInfo("America/New_York")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.xdist_group("e2e"),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@pytest.fixture
def wednesday_morning_in_new_york():
    """The clock runs from this week's Wednesday, 10:00 in New York: the next 8 weeks the rota page
    shows from now then hold eight hand-overs, four each, from the next Monday. On a Monday before
    08:00 (CI at 06:58Z) the first hand-over was a week off, the window held seven, and Olive's
    fourth turn fell outside it. The live server's thread shares the clock."""
    today = timezone.now().astimezone(NEW_YORK).date()
    wednesday = rota.next_weekday_on_or_after(today, 2)
    with time_machine.travel(datetime.combine(wednesday, time(10), tzinfo=NEW_YORK), tick=True):
        yield


def test_admin_builds_a_two_nurse_rotation_adds_a_swap_and_sees_eight_weeks(
    wednesday_morning_in_new_york, live_server, page, console_errors
):
    clinic = ClinicFactory(name="Hudson Pump Clinic (test)", timezone="America/New_York")
    admin = member(clinic, Role.CLINIC_ADMIN, username="ada", first_name="Ada", last_name="Admin")
    member(clinic, Role.NURSE, username="nora", first_name="Nora", last_name="Quill")
    member(clinic, Role.NURSE, username="olive", first_name="Olive", last_name="Reyes")
    zone = clinic.zone
    today = timezone.now().astimezone(zone).date()
    first_monday = rota.next_weekday_on_or_after(today + timedelta(days=1), 0)  # a gap until then

    log_in(page, live_server, admin.username, PASSWORD)
    page.goto(f"{live_server.url}/clinic/{clinic.pk}/")
    page.get_by_role("navigation", name=re.compile("administration")).get_by_role("link", name="Rota").click()
    expect(page.get_by_role("heading", name="On-call rota")).to_be_visible()
    expect(page.get_by_text("Nobody is on this rota yet").first).to_be_visible()
    screenshot(page, "rota-01-empty", docs_name="rota-empty")

    # Build the nurses' rotation: Nora then Olive, weekly, Mondays 08:00, from the next Monday.
    page.get_by_role("link", name="Edit On-call nurse").click()
    page.get_by_label("Nora Quill (Nurse)").fill("1")
    page.get_by_label("Olive Reyes (Nurse)").fill("2")
    expect(page.get_by_label("Hand-over day")).to_have_value("0")
    expect(page.get_by_label("Hand-over time (clinic time)")).to_have_value("08:00")
    page.get_by_label("First hand-over").fill(first_monday.isoformat())
    screenshot(page, "rota-02-rotation-form")
    page.get_by_role("button", name="Save the rota").click()
    expect(page.get_by_role("status").filter(has_text="On-call nurse saved: 2 member(s)")).to_be_visible()
    nurses = page.locator(f"section[data-rotation='{Rotation.objects.get(clinic=clinic, role=Role.NURSE).pk}']")
    expect(nurses.get_by_role("row", name=re.compile("Nora Quill"))).to_have_count(4)
    expect(nurses.get_by_role("row", name=re.compile("Olive Reyes"))).to_have_count(4)
    # Before the first hand-over nobody is on call: the admins' banner names the hours.
    banner = page.locator("#rota-gaps")
    expect(banner).to_contain_text("On-call nurse: nobody on call")
    expect(banner).to_contain_text(f"{first_monday:%a %d %b} 08:00")
    screenshot(page, "rota-03-built-with-gap", docs_name="rota-gap")

    # A swap: Olive takes the first two days of Nora's first week.
    swap_from = datetime.combine(first_monday, time(8), tzinfo=zone)
    swap_to = swap_from + timedelta(days=2)
    page.locator("#id_cover-rotation").select_option(label="On-call nurse")
    page.locator("#id_cover-membership").select_option(label="Olive Reyes (Nurse)")
    page.get_by_label("From (clinic time)").fill(f"{swap_from:%Y-%m-%dT%H:%M}")
    page.get_by_label("Until (clinic time)").fill(f"{swap_to:%Y-%m-%dT%H:%M}")
    page.get_by_label("Reason").fill("swap")
    page.get_by_role("button", name="Add the swap").click()
    expect(
        page.get_by_role("status").filter(has_text="Olive Reyes is on call on On-call nurse instead")
    ).to_be_visible()
    swapped = nurses.get_by_role("row").filter(has_text="Swap / cover")
    expect(swapped).to_have_count(1)
    expect(swapped).to_contain_text("Olive Reyes")
    expect(swapped).to_contain_text(f"{swap_from:%a %-d %b %Y} 08:00")
    screenshot(page, "rota-04-swap")

    # Cover the gap until the first hand-over: the banner goes at once, the gap alert resolves.
    start_of_today = datetime.combine(today, time(0), tzinfo=zone)
    page.locator("#id_cover-rotation").select_option(label="On-call nurse")
    page.locator("#id_cover-membership").select_option(label="Nora Quill (Nurse)")
    page.get_by_label("From (clinic time)").fill(f"{start_of_today:%Y-%m-%dT%H:%M}")
    page.get_by_label("Until (clinic time)").fill(f"{swap_from:%Y-%m-%dT%H:%M}")
    page.get_by_label("Reason").fill("cover until the rota starts")
    page.get_by_role("button", name="Add the swap").click()
    expect(page.get_by_role("status").filter(has_text="Nora Quill is on call")).to_be_visible()
    expect(page.locator("#rota-gaps")).to_have_count(0)
    expect(nurses.get_by_role("row", name=re.compile("Nobody"))).to_have_count(0)
    expect(page.get_by_role("heading", name="On call now").locator("..")).to_contain_text("On-call nurse: Nora Quill")
    assert not Alert.objects.open().filter(kind=AlertKind.ROTA_GAP).exists()
    assert Alert.objects.filter(kind=AlertKind.ROTA_GAP, resolution__startswith="Covered").count() == 1
    assert RotaOverride.objects.filter(rotation__clinic=clinic).count() == 2
    screenshot(page, "rota-05-eight-weeks", docs_name="rota")

    page.get_by_role("link", name="Staff", exact=True).click()
    nora = Membership.objects.get(user__username="nora")
    expect(page.locator(f"tr[data-membership='{nora.pk}']")).to_contain_text("On call now: On-call nurse")
    screenshot(page, "rota-06-staff-on-call-now")
    assert console_errors == []
