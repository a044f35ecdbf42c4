"""Alerts as work items in a real browser: clinic time on every page (an alert raised at 22:55Z in
Phoenix reads 15:55), and the worklist's urgency ranking, at desktop and phone sizes."""

import re
from datetime import UTC, timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest
import time_machine
from django.utils import timezone
from playwright.sync_api import expect

from alerts.engine import run_scan
from alerts.models import Alert
from clinics.access import log_access
from clinics.models import AccessLog, Role
from patients import services
from patients.models import PumpEvent, PumpModel

from ..factories import PASSWORD, ClinicFactory, PatientFactory, PumpFactory, drug_product, member
from .conftest import log_in, screenshot
from .test_nurse_day import clinic_day

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.xdist_group("e2e"),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

PHONE = {"width": 390, "height": 844}
REFILL_BUTTON = re.compile(r"^Refill\b")


def phone_page(browser):
    context = browser.new_context(viewport=PHONE, locale="en-US", is_mobile=True, has_touch=True)
    return context, context.new_page()


def phoenix_evening():
    """Yesterday 22:55Z (15:55 in Phoenix): a refill, its history, an access-log row, and an
    emergency raised by a reported critical alarm, all at that moment."""
    raised = (timezone.now() - timedelta(days=1)).astimezone(UTC).replace(hour=22, minute=55, second=0, microsecond=0)
    clinic = ClinicFactory(name="Palo Verde Clinic (test)", timezone="America/Phoenix")
    nurse = member(clinic, Role.NURSE, username="nell", first_name="Nell", last_name="Nightingale")
    admin = member(clinic, Role.CLINIC_ADMIN, username="ada", first_name="Ada", last_name="Admin")
    physician = member(clinic, Role.PHYSICIAN, username="phil", first_name="Phil", last_name="Physician")
    pump = PumpFactory(
        patient=PatientFactory(clinic=clinic, family_name="Evening", given_name="Eve"),
        pump_model=PumpModel.objects.get(name="SynchroMed II 40 mL"),
        assigned_nurse=nurse,
    )
    with time_machine.travel(raised, tick=False):
        refill = services.record_refill(
            pump=pump,
            actor=nurse,
            performed_at=raised,
            aspirated_ml=D("0"),
            volume_added_ml=D("40"),
            concentration_mcg_per_ml=D("2000"),
            daily_dose_mcg=D("600"),
            drug_product=drug_product("2000"),
            ordered_by=physician,
            dose_change_confirmed=True,
            now=raised,
        )
        services.record_pump_event(
            pump=pump, actor=nurse, kind=PumpEvent.Kind.CRITICAL_ALARM, occurred_at=raised, now=raised
        )
        log_access(nurse, AccessLog.Action.VIEW, pump.patient, detail="fixture read")
    run_scan()  # the heartbeat: no "alerting is not running" banner
    alert = Alert.objects.get(pump=pump, kind="pump_alarm")
    assert alert.raised_at == raised
    return clinic, nurse, admin, pump, refill, alert


def assert_clinic_time(page, url, *, shows=True):
    page.goto(url)
    text = page.locator("main").inner_text()
    assert "22:55" not in text, url
    if shows:
        assert "15:55" in text, url


@pytest.fixture
def late_morning_in_phoenix():
    """The clock runs from 18:00Z (11:00 in Phoenix), so that no time a page takes from "now" (the
    scan's timeline entries) can read 22:55 by chance: CI once ran at 05:55Z, 22:55 in Phoenix,
    and the scan's "Level 1" entry failed the test. The live server's thread shares the clock."""
    with time_machine.travel(timezone.now().replace(hour=18, minute=0, second=0, microsecond=0), tick=True):
        yield


def test_an_alert_raised_at_2255z_reads_1555_on_every_page(
    late_morning_in_phoenix, live_server, page, browser, console_errors
):
    clinic, nurse, admin, pump, refill, alert = phoenix_evening()
    base = live_server.url
    log_in(page, live_server, nurse.username, PASSWORD)
    assert_clinic_time(page, f"{base}/", shows=False)  # the worklist shows dates, not the alert's time
    assert_clinic_time(page, f"{base}/alerts/")
    screenshot(page, "clinic-time-inbox-desktop")
    assert_clinic_time(page, f"{base}/alerts/{alert.pk}/")
    expect(page.locator("#alert-raised")).to_have_text(f"{alert.raised_at.astimezone(clinic.zone):%Y-%m-%d} 15:55")
    expect(page.locator("main")).to_contain_text("Times are clinic time (America/Phoenix)")
    screenshot(page, "clinic-time-alert-desktop", "alert-page")
    page.get_by_role("button", name="Acknowledge (I am on it)").click()
    expect(page.locator(".timeline")).to_contain_text("Nell Nightingale")  # people by name
    assert_clinic_time(page, f"{base}/pumps/{pump.pk}/")
    page.get_by_role("button", name="Log out").click()

    log_in(page, live_server, admin.username, PASSWORD)
    for url in (
        f"{base}/clinic/{clinic.pk}/audit/",
        f"{base}/clinic/{clinic.pk}/access-log/",
        f"{base}/clinic/{clinic.pk}/history/refill/{refill.pk}/",
    ):
        assert_clinic_time(page, url)
    with page.expect_download() as download:
        page.goto(f"{base}/clinic/{clinic.pk}/audit/")
        page.get_by_role("link", name="Export these visits as CSV").click()
    csv_text = Path(download.value.path()).read_text(encoding="utf-8-sig")
    assert "T15:55-07:00" in csv_text and "22:55" not in csv_text

    context, phone = phone_page(browser)
    log_in(phone, live_server, nurse.username, PASSWORD)
    assert_clinic_time(phone, f"{base}/alerts/{alert.pk}/")
    screenshot(phone, "clinic-time-alert-phone")
    context.close()
    assert not [e for e in console_errors if "Content Security Policy" in e], console_errors


def test_worklist_ranks_an_emergency_and_a_mismatch_above_overdue(live_server, page, browser):
    nurse, overdue = clinic_day()
    now = timezone.now()
    # Fineman (OK by its dates) calls with withdrawal signs: an emergency. Soonley's low-reservoir
    # beep comes weeks before the app expected it: a critical MISMATCH, above the overdue pump.
    fine = overdue.patient.clinic.patients.get(family_name="Fineman").pumps.get()
    soon = overdue.patient.clinic.patients.get(family_name="Soonley").pumps.get()
    services.record_pump_event(
        pump=fine, actor=nurse, kind=PumpEvent.Kind.WITHDRAWAL_SYMPTOMS, occurred_at=now, symptoms=["itching"]
    )
    services.record_pump_event(pump=soon, actor=nurse, kind=PumpEvent.Kind.LOW_RESERVOIR_ALARM, occurred_at=now)
    assert Alert.objects.get(pump=soon, kind="pump_alarm").severity == 30

    log_in(page, live_server, nurse.username, PASSWORD)
    rows = page.locator("table.worklist tbody tr")
    expect(rows.nth(0)).to_contain_text("Fineman, Quinn")
    expect(rows.nth(0)).to_contain_text("Emergency")
    expect(rows.nth(1)).to_contain_text("Soonley, Riley")
    expect(rows.nth(1)).to_contain_text("Critical")
    expect(rows.nth(2)).to_contain_text("Overdale, Avery")
    summary = page.get_by_role("navigation", name="Pumps by status")
    expect(summary).to_contain_text("Emergency 1")
    expect(summary).to_contain_text("Critical 1")
    screenshot(page, "ranking-worklist-desktop", "worklist")
    rows.nth(1).get_by_role("link", name="Pump alarm or symptoms reported").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Pump alarm or symptoms reported")

    page.goto(f"{live_server.url}/pumps/{soon.pk}/")
    expect(page.locator(".open-alerts")).to_contain_text("Critical")
    screenshot(page, "ranking-pump-page-desktop")

    context, phone = phone_page(browser)
    log_in(phone, live_server, nurse.username, PASSWORD)
    expect(phone.locator("table.worklist tbody tr").first).to_contain_text("Fineman, Quinn")
    screenshot(phone, "ranking-worklist-phone")
    context.close()


NO_SIDEWAYS = """() => {
  const hidden = [document.documentElement, document.body, document.querySelector('main')]
    .map(e => getComputedStyle(e).overflowX).filter(v => v === 'hidden' || v === 'clip');
  return {scroll: document.documentElement.scrollWidth, inner: window.innerWidth, hidden: hidden};
}"""


WIDE = """() => Array.from(document.querySelectorAll('main *')).filter(e => e.getBoundingClientRect().right > 391)
  .slice(0, 12).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right) + ' ' + (e.innerText||'').slice(0,40))"""


def assert_fits_the_phone(page, url, name):
    page.goto(url)
    page.wait_for_load_state("networkidle")
    fit = page.evaluate(NO_SIDEWAYS)
    assert fit["hidden"] == [], (url, fit)  # hiding the overflow would only fake it
    wide = page.evaluate(WIDE) if fit["scroll"] > PHONE["width"] else []
    assert fit["scroll"] <= fit["inner"] == PHONE["width"], (url, fit, wide)
    screenshot(page, f"phone-{name}")


def inside_viewport(locator):
    box = locator.bounding_box()
    assert box is not None, locator
    return box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"] and box["width"] > 0


def test_main_pages_fit_a_phone_with_status_due_date_and_refill_on_screen(live_server, browser):
    nurse, overdue = clinic_day()
    alert = Alert.objects.filter(pump=overdue).first()
    context, page = phone_page(browser)
    base = live_server.url
    log_in(page, live_server, nurse.username, PASSWORD)
    assert_fits_the_phone(page, f"{base}/", "worklist")
    first = page.locator("table.worklist tbody tr").first
    status, due = first.locator("td.cell-status"), first.locator("td.cell-due")
    refill = first.get_by_role("link", name=REFILL_BUTTON)
    for part in (status, due, refill):
        expect(part).to_be_visible()
        assert inside_viewport(part), part
    expect(status).to_contain_text("Overdue")
    expect(due).to_contain_text("ago")
    assert_fits_the_phone(page, f"{base}/pumps/{overdue.pk}/", "pump-page")
    assert_fits_the_phone(page, f"{base}/alerts/", "inbox")
    first_alert = page.locator("table.inbox tbody tr").first
    expect(first_alert.get_by_role("button", name="Acknowledge")).to_be_visible()
    assert inside_viewport(first_alert.get_by_role("button", name="Acknowledge"))
    assert_fits_the_phone(page, f"{base}/alerts/{alert.pk}/", "alert-page")
    assert_fits_the_phone(page, f"{base}/schedule/", "schedule")

    page.goto(f"{base}/")
    page.locator("table.worklist tbody tr").first.get_by_role("link", name=REFILL_BUTTON).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Record a refill")
    assert_fits_the_phone(page, page.url, "refill-form")
    page.get_by_label("Volume added — the new reservoir volume (mL)").fill("40")
    expect(page.locator("#preview-due")).to_be_visible()
    preview_top = page.locator("#refill-preview").bounding_box()["y"]
    save_top = page.get_by_role("button", name="Save refill").bounding_box()["y"]
    assert preview_top < save_top  # the preview above Save on a phone
    screenshot(page, "phone-refill-form-preview")
    context.close()
