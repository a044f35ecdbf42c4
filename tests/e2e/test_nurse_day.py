"""The nurse's day in a real browser: log in → the worklist shows an overdue pump first → open
it → the chart is drawn → record a refill with the live preview → the due date moves → book the
next appointment. And a bad refill (over capacity) shows the field error and saves nothing."""

import re
from datetime import timedelta
from decimal import Decimal as D

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from alerts.engine import run_scan
from alerts.models import Alert
from clinics.models import Role
from patients import services
from patients.models import Appointment, PumpModel, PumpProjection, RefillVisit

from ..factories import PASSWORD, ClinicFactory, PatientFactory, PumpFactory, drug_product, member
from .conftest import log_in, screenshot

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.xdist_group("e2e"),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

# (family, given, days since the last fill, dose mcg/day, concentration, pump model): synthetic patients.
# With 40 mL at 600 mcg/day of 2000 mcg/mL the refill falls due ~113 days after the fill.
CLINIC_DAY = [
    ("Overdale", "Avery", 116, "600", "2000", "SynchroMed II 40 mL"),
    ("Duesworth", "Jordan", 104, "600", "2000", "SynchroMed II 40 mL"),
    ("Soonley", "Riley", 46, "150", "500", "SynchroMed II 20 mL"),
    ("Fineman", "Quinn", 30, "600", "2000", "SynchroMed II 40 mL"),
    ("Steadman", "Morgan", 12, "300", "2000", "Prometra II 40 mL"),
    ("Newfill", "Casey", 3, "450", "2000", "SynchroMed II 40 mL"),
]


def clinic_day():
    """A fictional clinic with pumps in several states now; returns (nurse, the overdue pump)."""
    now = timezone.now()
    clinic = ClinicFactory(name="Mesquite Pump Clinic (test)", timezone="America/Phoenix", phone="+1 555 0142")
    nurse = member(clinic, Role.NURSE, username="nina", first_name="Nina", last_name="Nurse")
    physician = member(clinic, Role.PHYSICIAN, username="paz", first_name="Paz", last_name="Physician")
    pumps = []
    for family, given, days, dose, concentration, model in CLINIC_DAY:
        pump = PumpFactory(
            patient=PatientFactory(clinic=clinic, family_name=family, given_name=given),
            pump_model=PumpModel.objects.get(name=model),
            assigned_nurse=nurse,
        )
        filled_at = (now - timedelta(days=days, hours=2)).replace(second=0, microsecond=0)
        services.record_refill(
            pump=pump,
            actor=nurse,
            performed_at=filled_at,
            aspirated_ml=D("0"),
            volume_added_ml=pump.pump_model.reservoir_ml,
            concentration_mcg_per_ml=D(concentration),
            daily_dose_mcg=D(dose),
            drug_product=drug_product(concentration),
            drug_lot="LOT-TEST-1",
            ordered_by=physician,
            dose_change_confirmed=True,
            now=filled_at,
        )
        pumps.append(pump)
    # One pass of the alerting scan, as Celery beat would run it: the overdue pump raises its
    # alert, and the heartbeat keeps the "alerting is not running" banner away.
    run_scan()
    return nurse, pumps[0]


def test_the_nurses_day(live_server, page, console_errors):
    nurse, overdue = clinic_day()
    due_before = PumpProjection.objects.get(pump=overdue).refill_due_on
    assert Alert.objects.filter(pump=overdue).open().exists()

    log_in(page, live_server, nurse.username, PASSWORD)
    first_row = page.locator("table.worklist tbody tr").first
    expect(first_row).to_contain_text("Overdue")
    expect(first_row).to_contain_text("Overdale, Avery")
    screenshot(page, "nurse-day-1-worklist", "worklist")

    first_row.get_by_role("link", name="Overdale, Avery").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Overdale, Avery")
    canvas = page.locator("#reservoir-chart")
    expect(canvas).to_have_attribute("data-drawn", "true")
    assert canvas.evaluate("c => c.width > 0 && c.height > 0")
    # Something was painted: the canvas is not one flat colour.
    assert canvas.evaluate(
        """c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                 for (let i = 4; i < d.length; i += 4) { if (d[i] !== d[0] || d[i + 3] !== d[3]) return true; }
                 return false; }"""
    )
    expect(page.locator("#refill-due")).to_contain_text(f"{due_before:%Y-%m-%d}")
    screenshot(page, "nurse-day-2-pump-page", "pump-page")

    page.get_by_role("link", name="Record refill").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Record a refill")
    expect(page.get_by_label("Residual aspirated (mL)")).not_to_have_value("")
    page.get_by_label("Volume added — the new reservoir volume (mL)").fill("40")
    page.get_by_label("Drug lot number").fill("LOT-E2E-7")
    preview = page.locator("#refill-preview")
    expect(preview.locator("#preview-due")).to_be_visible()
    expect(preview).to_contain_text("Within tolerance")
    expect(preview).to_contain_text("0.3000 mL/day")
    expect(preview).to_contain_text(f"currently due {due_before:%Y-%m-%d}")
    assert RefillVisit.objects.filter(pump=overdue).count() == 1  # the preview saved nothing
    screenshot(page, "nurse-day-3-refill-form", "refill-form")

    page.get_by_role("button", name="Save refill").click()
    expect(page.get_by_role("heading", name="Your baclofen pump refill")).to_be_visible()
    due_after = PumpProjection.objects.get(pump=overdue).refill_due_on
    assert due_after > due_before + timedelta(days=100)
    assert not Alert.objects.filter(pump=overdue).open().exists()  # the refill resolved its alert
    expect(page.locator("#card-due")).to_contain_text(f"{due_after:%B}")
    expect(page.locator(".clinic-phone")).to_contain_text("+1 555 0142")
    screenshot(page, "nurse-day-4-card")

    page.get_by_role("link", name="Book the next refill").click()
    scheduled = page.get_by_label("Date and time")
    expect(scheduled).to_have_value(re.compile(rf"^{due_after:%Y-%m-%d}T09:00"))
    page.get_by_role("button", name="Book").click()
    expect(page.get_by_role("status").first).to_contain_text("Refill booked for")
    expect(page.locator("#refill-due")).to_contain_text(f"{due_after:%Y-%m-%d}")
    expect(page.locator(".appointments")).to_contain_text("Scheduled")
    assert Appointment.objects.get(pump=overdue).scheduled_for.date() >= due_after - timedelta(days=1)
    screenshot(page, "nurse-day-5-booked")

    page.get_by_role("link", name="Refill worklist").first.click()
    expect(page.locator("table.worklist tbody tr").first).not_to_contain_text("Overdale, Avery")
    assert not [e for e in console_errors if "Content Security Policy" in e or "Refused" in e], console_errors


def test_a_bad_refill_shows_the_field_error_and_saves_nothing(live_server, browser, console_errors):
    nurse, overdue = clinic_day()
    # A tablet beside the patient (portrait).
    context = browser.new_context(viewport={"width": 820, "height": 1180}, locale="en-US")
    page = context.new_page()
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    log_in(page, live_server, nurse.username, PASSWORD)
    page.goto(f"{live_server.url}/pumps/{overdue.pk}/refill/")
    volume = page.get_by_label("Volume added — the new reservoir volume (mL)")
    volume.fill("45")
    expect(page.locator("#refill-preview")).to_contain_text("Over capacity")
    page.get_by_role("button", name="Save refill").click()
    expect(volume).to_have_class(re.compile(r"\bis-invalid\b"))
    expect(page.locator("#main")).to_contain_text(
        "45.00 mL is more than the reservoir holds (40.00 mL): never overfill."
    )
    expect(volume).to_have_value("45")
    expect(page.locator("#form-errors")).to_contain_text("The refill was not saved.")
    assert RefillVisit.objects.filter(pump=overdue).count() == 1
    screenshot(page, "bad-refill-over-capacity-tablet")
    context.close()
    assert not [e for e in errors if "Content Security Policy" in e or "Refused" in e], errors
