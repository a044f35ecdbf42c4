"""Long words wrap (issue 9, item 10): a 100,000-character note once stretched the pump page to
829,000 px. Notes now stop at 2,000 characters and reasons at 500, and every page wraps a long
unbroken word (``overflow-wrap: anywhere``), so a 2,000-character note typed without a space keeps
the page at the window's width with its actions on screen."""

from datetime import timedelta
from decimal import Decimal as D

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from clinics.models import Role
from patients import services

from ..factories import PASSWORD, ClinicFactory, PatientFactory, PumpFactory, member
from .conftest import log_in, screenshot

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.xdist_group("e2e"),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

DESKTOP = 1280
NOTE = "N" * 2000  # the longest note, one unbroken word
SECOND_NOTE = "M" * 2000
REASON = "R" * 500

FITS = """() => ({
  scroll: document.documentElement.scrollWidth,
  inner: window.innerWidth,
  hidden: [document.documentElement, document.body, document.querySelector('main')]
    .map(e => getComputedStyle(e).overflowX).filter(v => v === 'hidden' || v === 'clip'),
  boxes: Array.from(document.querySelectorAll('.table-responsive'))
    .filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.querySelector('table').className),
})"""


def pump_with_long_text():
    """A pump whose refill note, amendment reason, appointment and call notes and the patient's
    risk notes are each as long as allowed and have no space to break at."""
    now = timezone.now()
    clinic = ClinicFactory(name="Long Words Clinic (test)", timezone="America/Phoenix")
    nurse = member(clinic, Role.NURSE, username="lena", first_name="Lena", last_name="Longworth")
    physician = member(clinic, Role.PHYSICIAN, username="pat", first_name="Pat", last_name="Prescriber")
    patient = PatientFactory(clinic=clinic, family_name="Wordsworth", given_name="Ada", risk_notes=NOTE)
    pump = PumpFactory(patient=patient, assigned_nurse=nurse)
    filled_at = (now - timedelta(days=20)).replace(second=0, microsecond=0)
    refill = services.record_refill(
        pump=pump,
        actor=nurse,
        performed_at=filled_at,
        aspirated_ml=D("0"),
        volume_added_ml=D("40"),
        concentration_mcg_per_ml=D("2000"),
        daily_dose_mcg=D("600"),
        ordered_by=physician,
        notes=NOTE,
        now=filled_at,
    )
    services.amend_refill(refill=refill, actor=nurse, amend_reason=REASON, notes=SECOND_NOTE, now=now)
    services.schedule_appointment(
        pump=pump,
        actor=nurse,
        kind="refill",
        scheduled_for=now + timedelta(days=30),
        notes=NOTE,
        closed_day_confirmed=True,
        now=now,
    )
    services.record_pump_event(pump=pump, actor=nurse, kind="other", occurred_at=now, notes=NOTE, now=now)
    return nurse, pump


def test_a_2000_character_unbroken_note_keeps_the_pump_page_at_desktop_width_with_actions_on_screen(
    live_server, page, console_errors
):
    nurse, pump = pump_with_long_text()
    log_in(page, live_server, nurse.username, PASSWORD)
    page.goto(f"{live_server.url}/pumps/{pump.pk}/")
    page.wait_for_load_state("networkidle")
    expect(page.locator("table.refills")).to_contain_text(SECOND_NOTE[:100])
    shot = screenshot(page, "long-note-pump-page-desktop")
    fit = page.evaluate(FITS)
    assert fit["hidden"] == [], fit  # hiding the overflow would only fake it
    assert fit["scroll"] <= fit["inner"] == DESKTOP, (fit, shot)
    assert fit["boxes"] == [], fit  # no table scrolls sideways inside its box either
    for action in (
        page.get_by_role("link", name="Record refill"),
        page.get_by_role("link", name="Explant"),
        page.locator("table.refills").get_by_role("link", name="Amend"),
        page.locator("table.refills").get_by_role("link", name="History"),
    ):
        expect(action).to_be_visible()
        box = action.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= DESKTOP, (action, box)
    # The refill's history shows the old and the new note whole, wrapped, at the same width.
    page.locator("table.refills").get_by_role("link", name="History").click()
    expect(page.locator("main")).to_contain_text(REASON)
    fit = page.evaluate(FITS)
    assert fit["scroll"] <= fit["inner"] and fit["boxes"] == [], fit
    screenshot(page, "long-note-refill-history-desktop")
    assert not console_errors, console_errors
