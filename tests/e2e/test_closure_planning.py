"""A clinic admin plans for a closure in a real browser: enters a closure covering a pump's refill
due date → the planner lists the pump with its latest safe refill day → a nurse books it from the
planner, before the closure → the worklist shows the moved due date ("moved from … (closed)")."""

import re
from datetime import timedelta
from decimal import Decimal as D

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from alerts.engine import run_scan
from clinics.models import Role
from patients import services
from patients.models import Appointment, DrugProduct, PumpModel, PumpProjection

from ..factories import PASSWORD, ClinicFactory, PatientFactory, PumpFactory, member
from .conftest import log_in, screenshot

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.xdist_group("e2e"),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def mesquite_clinic():
    """A fictional clinic: its admin, a nurse, and a pump filled 100 days ago (due in about two weeks)."""
    model, _ = PumpModel.objects.get_or_create(
        manufacturer="Medtronic",
        name="SynchroMed II 40 mL",
        defaults={"reservoir_ml": D("40"), "default_lra_ml": D("2")},
    )
    drug, _ = DrugProduct.objects.get_or_create(
        name="Gablofen", concentration_mcg_per_ml=D("2000"), defaults={"max_days_in_pump": 180}
    )
    clinic = ClinicFactory(name="Mesquite Pump Clinic (test)", timezone="America/Phoenix")
    admin = member(clinic, Role.CLINIC_ADMIN, username="ada", first_name="Ada", last_name="Admin")
    nurse = member(clinic, Role.NURSE, username="nico", first_name="Nico", last_name="Nurse")
    physician = member(clinic, Role.PHYSICIAN, username="phoebe", first_name="Phoebe", last_name="Physician")
    pump = PumpFactory(
        patient=PatientFactory(clinic=clinic, family_name="Closewell", given_name="Jo", mrn="MESQ0001"),
        pump_model=model,
        assigned_nurse=nurse,
    )
    filled_at = (timezone.now() - timedelta(days=100)).replace(second=0, microsecond=0)
    services.record_refill(
        pump=pump,
        actor=nurse,
        performed_at=filled_at,
        aspirated_ml=D("0"),
        volume_added_ml=D("40"),
        concentration_mcg_per_ml=D("2000"),
        daily_dose_mcg=D("600"),
        drug_product=drug,
        drug_lot="LOT-MESQ-1",
        ordered_by=physician,  # a nurse's first fill names the ordering physician
        now=filled_at,
    )
    run_scan()  # as beat would: the "alerting is not running" banner stays away
    return clinic, admin, nurse, pump


def test_admin_enters_a_closure_the_planner_lists_the_pump_and_a_nurse_books_it_earlier(
    live_server, page, browser, console_errors
):
    clinic, admin, nurse, pump = mesquite_clinic()
    due = PumpProjection.objects.get(pump=pump).unmoved_refill_due_on
    first_day, last_day = due - timedelta(days=1), due + timedelta(days=1)

    log_in(page, live_server, admin.username, PASSWORD)
    page.goto(f"{live_server.url}/clinic/{clinic.pk}/settings/")
    page.get_by_role("navigation", name=re.compile("administration")).get_by_role("link", name="Closures").click()
    expect(page.get_by_role("heading", name="Closures")).to_be_visible()
    page.get_by_label("First closed day").fill(f"{first_day:%Y-%m-%d}")
    page.get_by_label("Last closed day").fill(f"{last_day:%Y-%m-%d}")
    page.get_by_label("Reason").fill("Holiday shutdown")
    screenshot(page, "closure-1-enter")
    page.get_by_role("button", name="Save closure and plan refills").click()

    expect(page.get_by_role("heading", name="Closure planning")).to_be_visible()
    row = page.locator("#planner tbody tr", has_text="Closewell, Jo")
    expect(row).to_contain_text(f"due {due:%a %m-%d}, during the closure")
    moved = PumpProjection.objects.get(pump=pump).refill_due_on
    assert moved < first_day
    expect(row.locator(".latest-safe")).to_contain_text(f"{moved:%a %Y-%m-%d}")
    expect(row.locator(".booking")).to_contain_text("not booked")
    screenshot(page, "closure-2-planner", "closure-planner")

    # The nurse books it from the planner (clinic admins do not record care: DESIGN.md).
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    nurse_page = context.new_page()
    log_in(nurse_page, live_server, nurse.username, PASSWORD)
    nurse_page.goto(page.url)
    nurse_row = nurse_page.locator("#planner tbody tr", has_text="Closewell, Jo")
    nurse_row.get_by_role("link", name="Book").click()
    expect(nurse_page.get_by_label("Date and time")).to_have_value(re.compile(rf"^{moved:%Y-%m-%d}T09:00"))
    screenshot(nurse_page, "closure-3-book")
    nurse_page.get_by_role("button", name="Book").click()
    expect(nurse_page.get_by_role("status").first).to_contain_text("Refill booked for")
    expect(nurse_page.locator("#planner tbody tr", has_text="Closewell, Jo").locator(".booking")).to_contain_text(
        "in time"
    )
    booked = Appointment.objects.get(pump=pump)
    assert booked.scheduled_for.astimezone(clinic.zone).date() == moved < first_day
    screenshot(nurse_page, "closure-4-booked")

    nurse_page.get_by_role("link", name="Refill worklist").first.click()
    worklist_row = nurse_page.locator("table.worklist tbody tr", has_text="Closewell, Jo")
    expect(worklist_row).to_contain_text(f"{moved:%a %Y-%m-%d}")
    expect(worklist_row).to_contain_text(f"moved from {due:%a %m-%d} (closed)")
    screenshot(nurse_page, "closure-5-worklist")
    worklist_row.get_by_role("link", name="Closewell, Jo").click()
    expect(nurse_page.locator("#refill-due")).to_contain_text(f"{moved:%a %Y-%m-%d}")
    expect(nurse_page.locator("#refill-due")).to_contain_text(f"moved from {due:%a %m-%d} (closed)")
    screenshot(nurse_page, "closure-6-pump-page")
    context.close()
    assert not [e for e in console_errors if "Content Security Policy" in e or "Refused" in e], console_errors
