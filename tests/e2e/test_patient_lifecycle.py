"""The record's whole life in a real browser, as a nurse following links only: register a patient
with a spinal cord injury at T6, implant a SynchroMed II 40 mL with its first fill, see the due
date with the high-risk extra days on the worklist, change the dose naming the physician, clear
the flag and see the date three days later; transfer another patient and see that pump leave the
worklist and its alert resolve."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from alerts.models import REFILL_FAMILY, Alert, AlertKind
from patients.models import Patient, Program, Pump

from ..factories import PASSWORD
from .conftest import log_in, screenshot
from .test_nurse_day import clinic_day

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.xdist_group("e2e"),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

PHX = ZoneInfo("America/Phoenix")
DRUG_DAYS = 180  # Gablofen's days in the pump (the catalogue)


def first_fill_time(now) -> datetime:
    """A fill time in the last week (clinic time, whole minutes) whose due dates — with and
    without the high-risk extra — fall on weekdays, so no closed-day rule can move them."""
    local = now.astimezone(PHX).replace(second=0, microsecond=0) - timedelta(hours=1)
    for days_back in range(7):
        filled = local - timedelta(days=days_back)
        expiry = (filled + timedelta(days=DRUG_DAYS)).date()
        if all((expiry - timedelta(days=margin)).weekday() < 5 for margin in (10, 7)):
            return filled
    raise AssertionError("no fill day in a week gives weekday due dates")


def due_on(filled: datetime, margin_days: int):
    """CLINICAL.md: the clinic-zone date of min(conservative alarm, drug expiry) − the margin.
    At 150 mcg/day of 2000 mcg/mL (0.075 mL/day) the conservative alarm is 482 days away: the
    drug's 180 days come first."""
    conservative_alarm_days = (40 - 2) / (0.075 * 1.05)
    assert conservative_alarm_days > DRUG_DAYS
    return (filled + timedelta(days=DRUG_DAYS)).astimezone(PHX).date() - timedelta(days=margin_days)


def test_register_implant_change_dose_clear_flag_and_transfer(live_server, page, console_errors):
    nurse, transferred_pump = clinic_day()
    assert Alert.objects.filter(pump=transferred_pump).open().exists()
    filled = first_fill_time(timezone.now())
    high_risk_due = due_on(filled, 7 + 3)
    plain_due = due_on(filled, 7)

    log_in(page, live_server, nurse.username, PASSWORD)
    main = page.locator("#main")

    # Register the patient from the worklist.
    main.get_by_role("link", name="New patient").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("New patient")
    page.get_by_label("MRN (medical record number)").fill("E2E-0601")
    page.get_by_label("Given name").fill("Dana")
    page.get_by_label("Family name").fill("Riverside")
    page.get_by_label("Birth date").fill("1979-06-01")
    page.get_by_label("Phone").fill("+1 555 0160")
    page.get_by_label("Caregiver or emergency contact").fill("Lee Riverside (brother) +1 555 0161")
    page.get_by_label("Spinal cord injury at T6 or above").check()
    screenshot(page, "lifecycle-1-new-patient", "patient-form")
    page.get_by_role("button", name="Register patient").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Riverside, Dana")
    expect(page.locator(".risk-panel")).to_contain_text("Spinal cord injury at or above T6")
    screenshot(page, "lifecycle-2-patient-page")

    # Implant a SynchroMed II 40 mL with its first fill, watching the live preview.
    page.get_by_role("link", name="Implant a pump").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Implant a pump")
    page.get_by_label("Pump model").select_option(label="Medtronic SynchroMed II 40 mL")
    page.get_by_label("Serial number").fill("NGV-E2E-601")
    page.get_by_label("Implanted on").fill(f"{filled:%Y-%m-%d}")
    page.get_by_label("Assigned nurse").select_option(label="Nina Nurse")
    page.get_by_label("Performed at").fill(f"{filled:%Y-%m-%dT%H:%M}")
    page.get_by_label("First fill — volume in the reservoir (mL)").fill("40")
    page.get_by_label("Drug product").select_option(label="Gablofen 2000 mcg/mL")
    page.get_by_label("Drug lot number").fill("LOT-E2E-601")
    page.get_by_label("Daily dose (mcg/day)").fill("150")
    page.get_by_label("Ordering physician").select_option(label="Paz Physician")
    preview = page.locator("#refill-preview")
    expect(preview.locator("#preview-due")).to_contain_text(f"{high_risk_due:%Y-%m-%d}")
    expect(preview).to_contain_text("0.0750 mL/day")
    assert not Pump.objects.filter(serial_number="NGV-E2E-601").exists()  # the preview saved nothing
    screenshot(page, "lifecycle-3-implant-form", "implant-form")
    page.get_by_role("button", name="Implant and fill").click()
    expect(page.locator("#refill-due")).to_contain_text(f"{high_risk_due:%Y-%m-%d}")
    pump = Pump.objects.get(serial_number="NGV-E2E-601")
    assert pump.refills.get().expected_residual_ml is None  # a first fill has no expected residual
    screenshot(page, "lifecycle-4-pump-page")

    # The worklist shows it with the high-risk margin (7 + 3 days).
    page.get_by_role("link", name="Refill worklist").first.click()
    row = page.locator("table.worklist tbody tr", has_text="Riverside, Dana")
    expect(row).to_contain_text(f"{high_risk_due:%a %Y-%m-%d}")
    expect(row).to_contain_text("Withdrawal risk")
    screenshot(page, "lifecycle-5-worklist")

    # Change the dose to 170 mcg/day, naming the physician.
    row.get_by_role("link", name="Riverside, Dana").click()
    page.get_by_role("link", name="Change dose").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Change dose")
    page.get_by_label("New daily dose (mcg/day)").fill("170")
    page.get_by_label("Ordering physician").select_option(label="Paz Physician")
    expect(page.locator("#program-preview")).to_contain_text("150 → 170 mcg/day (13%)")
    expect(page.locator("#program-preview #preview-due")).to_contain_text(f"{high_risk_due:%Y-%m-%d}")
    screenshot(page, "lifecycle-6-change-dose", "change-dose")
    page.get_by_role("button", name="Save dose change").click()
    expect(page.locator("#program-dose")).to_have_text("170 mcg/day")
    expect(page.locator("#program-ordered-by")).to_contain_text("Paz Physician")
    assert Program.objects.filter(pump=pump).latest("effective_at").entered_by == nurse

    # Clear the flag through the edit page: the due date moves 3 days later at once.
    page.get_by_role("link", name="Riverside, Dana").first.click()
    page.get_by_role("link", name="Edit patient").click()
    flag = page.get_by_label("Spinal cord injury at T6 or above")
    expect(flag).to_be_checked()
    flag.uncheck()
    screenshot(page, "lifecycle-7-edit-patient")
    page.get_by_role("button", name="Save patient").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Riverside, Dana")
    expect(page.locator("#main")).to_contain_text(f"{plain_due:%a %Y-%m-%d}")
    assert plain_due == high_risk_due + timedelta(days=3)
    page.get_by_role("link", name="Refill worklist").first.click()
    expect(page.locator("table.worklist tbody tr", has_text="Riverside, Dana")).to_contain_text(
        f"{plain_due:%a %Y-%m-%d}"
    )

    # Transfer another patient: the pump leaves the worklist, its overdue alert resolves.
    page.locator("table.worklist tbody tr", has_text="Overdale, Avery").get_by_role(
        "link", name="Overdale, Avery"
    ).click()
    page.get_by_role("link", name="Overdale, Avery").first.click()
    page.get_by_role("link", name="Change status").click()
    today = timezone.now().astimezone(PHX).date()
    page.get_by_label("Transferred").check()
    expect(page.get_by_label("From")).to_have_value(f"{today:%Y-%m-%d}")
    page.get_by_label("Reason").fill("Moved to Tucson; care handed over.")
    page.get_by_label("Receiving clinic", exact=True).fill("Tucson Spasticity Clinic (test)")
    page.get_by_label("First refill date the receiving clinic accepted").fill(f"{today + timedelta(days=2):%Y-%m-%d}")
    screenshot(page, "lifecycle-8-status", "patient-status")
    page.get_by_role("button", name="Save status").click()
    expect(page.locator(".record-header")).to_contain_text("Patient transferred")
    assert Patient.objects.get(pk=transferred_pump.patient_id).status == Patient.Status.TRANSFERRED
    # The overdue alert resolved with the transfer; only the "left the clinic's care" note to the
    # nurse and physicians stays open (a wrong transfer must not silently stop alerting).
    refill_alerts = Alert.objects.filter(pump=transferred_pump, kind__in=REFILL_FAMILY)
    assert refill_alerts.exists() and not refill_alerts.filter(resolved_at__isnull=True).exists()
    assert set(Alert.objects.filter(pump=transferred_pump).open().values_list("kind", flat=True)) == {
        AlertKind.CARE_ENDED
    }
    page.get_by_role("link", name="Handover summary").first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Handover summary")
    screenshot(page, "lifecycle-9-handover", "handover-summary")
    page.get_by_role("link", name="Refill worklist").first.click()
    expect(page.locator("table.worklist")).not_to_contain_text("Overdale, Avery")
    expect(page.locator("table.worklist")).to_contain_text("Riverside, Dana")
    assert not [e for e in console_errors if "Content Security Policy" in e or "Refused" in e], console_errors
