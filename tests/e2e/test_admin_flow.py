"""A clinic administrator in a real browser: log in → the clinic's administration → widen the
refill safety margin (every pump's due date moves) → export the audit CSV (a download, logged)
→ read an amended refill's history → see the export in the access log."""

import csv
import io
import re
from datetime import timedelta
from decimal import Decimal as D

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from alerts.models import EscalationPolicy, FailingAddress, Severity, Webhook
from clinics.models import AccessLog, Membership, Role
from patients import services
from patients.models import DrugProduct, PumpModel, PumpProjection

from ..factories import PASSWORD, ClinicFactory, PatientFactory, PumpFactory, member
from .conftest import log_in, screenshot

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.xdist_group("e2e"),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def catalogue():
    """The pump model and drug this scenario uses. They come from the data migration, but a live-server
    test runs after other transactional tests whose flush the serialized rollback restores; once
    (a timing-dependent case) the rows were missing here, so the scenario does not depend on them."""
    model, _ = PumpModel.objects.get_or_create(
        manufacturer="Medtronic",
        name="SynchroMed II 40 mL",
        defaults={"reservoir_ml": D("40"), "default_lra_ml": D("2")},
    )
    drug, _ = DrugProduct.objects.get_or_create(
        name="Gablofen", concentration_mcg_per_ml=D("2000"), defaults={"max_days_in_pump": 180}
    )
    return model, drug


def ironwood_clinic():
    """A fictional clinic: its admin, a nurse, and one pump filled 30 days ago whose refill was
    then amended (the added volume corrected from 40 to 38 mL)."""
    model, drug = catalogue()
    now = timezone.now()
    clinic = ClinicFactory(name="Ironwood Pump Clinic (test)", timezone="America/Phoenix")
    admin = member(clinic, Role.CLINIC_ADMIN, username="ada", first_name="Ada", last_name="Admin")
    nurse = member(clinic, Role.NURSE, username="nico", first_name="Nico", last_name="Nurse")
    physician = member(clinic, Role.PHYSICIAN, username="phoebe", first_name="Phoebe", last_name="Physician")
    pump = PumpFactory(
        patient=PatientFactory(clinic=clinic, family_name="Paloverde", given_name="Sam", mrn="IRON0001"),
        pump_model=model,
        assigned_nurse=nurse,
    )
    filled_at = (now - timedelta(days=30)).replace(second=0, microsecond=0)
    refill = services.record_refill(
        pump=pump,
        actor=nurse,
        performed_at=filled_at,
        aspirated_ml=D("0"),
        volume_added_ml=D("40"),
        concentration_mcg_per_ml=D("2000"),
        daily_dose_mcg=D("600"),
        drug_product=drug,
        drug_lot="LOT-IRON-1",
        ordered_by=physician,  # a first fill is a dose change: the nurse names the physician
        now=filled_at,
    )
    services.amend_refill(
        refill=refill, actor=nurse, amend_reason="Typed 40 for 38 mL added", volume_added_ml=D("38"), now=now
    )
    return clinic, admin, pump, refill


def test_admin_changes_a_setting_exports_the_audit_and_reads_a_history(live_server, page, console_errors):
    clinic, admin, pump, refill = ironwood_clinic()
    due_before = PumpProjection.objects.get(pump=pump).unmoved_refill_due_on

    log_in(page, live_server, admin.username, PASSWORD)
    page.goto(f"{live_server.url}/clinic/")
    expect(page.get_by_role("heading", name="Clinic administration")).to_be_visible()
    screenshot(page, "admin-01-index")

    page.get_by_role("link", name=clinic.name).click()
    expect(page.get_by_role("heading", name="Staff")).to_be_visible()
    expect(page.get_by_role("row", name=re.compile("Nico Nurse"))).to_be_visible()
    screenshot(page, "admin-02-staff")

    # Settings: widen the safety margin from 7 to 10 days.
    page.get_by_role("navigation", name=re.compile("administration")).get_by_role("link", name="Settings").click()
    margin = page.get_by_label("Refill safety margin (days)")
    expect(margin).to_have_value("7")
    margin.fill("10")
    screenshot(page, "admin-03-settings")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status").filter(has_text="Settings saved")).to_contain_text("1 refill due date moved")
    expect(page.get_by_label("Refill safety margin (days)")).to_have_value("10")
    # Before it moves to an open day (closed days, CLINICAL.md): the date the margin gives.
    assert PumpProjection.objects.get(pump=pump).unmoved_refill_due_on == due_before - timedelta(days=3)
    screenshot(page, "admin-04-settings-saved")

    # Audit: the refill is listed, flagged as amended; export it.
    page.get_by_role("link", name="Audit").click()
    row = page.locator(f"tr[data-refill='{refill.pk}']")
    expect(row).to_contain_text("Paloverde, Sam")
    expect(row).to_contain_text("Amended")
    page.get_by_label("Discrepancies only").check()
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_text("No refill visits match the filters.")).to_be_visible()
    page.get_by_role("link", name="Clear filters").click()
    screenshot(page, "admin-05-audit")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export these visits as CSV").click()
    download = download_info.value
    assert re.fullmatch(r"refill-visits-ironwood-pump-clinic-test-\d{4}-\d{2}-\d{2}\.csv", download.suggested_filename)
    with open(download.path(), encoding="utf-8-sig") as exported:
        rows = list(csv.DictReader(io.StringIO(exported.read())))
    assert [(r["patient_mrn"], r["volume_added_ml"], r["amend_reason"]) for r in rows] == [
        ("IRON0001", "38.00", "Typed 40 for 38 mL added")
    ]
    export = AccessLog.objects.get(action=AccessLog.Action.EXPORT)
    assert export.user == admin and export.detail == "Refill visits CSV, 1 row: all dates"

    # The refill's history: who amended what, old and new values side by side.
    row.get_by_role("link", name=re.compile("History")).click()
    expect(page.get_by_role("heading", name="Change history")).to_be_visible()
    amendment = page.locator("ol.history > li").first
    expect(amendment).to_contain_text("Nico Nurse")
    expect(amendment).to_contain_text("Typed 40 for 38 mL added")
    expect(amendment.get_by_role("row", name=re.compile("Volume added"))).to_contain_text("40 mL")
    expect(amendment.get_by_role("row", name=re.compile("Volume added"))).to_contain_text("38 mL")
    expect(page.get_by_role("button", name=re.compile("revert", re.I))).to_have_count(0)
    screenshot(page, "admin-06-history")

    # The access log shows the export and the history read.
    page.get_by_role("link", name="Access log").click()
    expect(page.get_by_role("cell", name="Refill visits CSV, 1 row: all dates")).to_be_visible()
    expect(page.get_by_role("cell", name=re.compile("change history of refill visit"))).to_be_visible()
    screenshot(page, "admin-07-access-log")

    assert console_errors == []


def test_admin_edits_escalation_and_staff_and_sees_failing_addresses(live_server, page, console_errors):
    clinic, admin, pump, _refill = ironwood_clinic()
    nurse = pump.assigned_nurse
    now = timezone.now()
    Webhook.objects.create(clinic=clinic, url="https://pager.example.org/itb", secret="not-shown")
    FailingAddress.objects.create(
        clinic=clinic,
        channel="email",
        address=nurse.email,
        first_failed_at=now - timedelta(days=2),
        last_failed_at=now - timedelta(hours=3),
        last_error="550 5.1.1 mailbox unavailable",
    )
    urgent = EscalationPolicy.objects.get(clinic=clinic, severity=Severity.URGENT)

    log_in(page, live_server, admin.username, PASSWORD)
    page.goto(f"{live_server.url}/clinic/{clinic.pk}/escalation/")
    expect(page.get_by_text("Changes apply to new alerts only.")).to_be_visible()
    screenshot(page, "admin-11-escalation")

    page.get_by_role("link", name="Edit the Urgent policy").click()
    first_level = page.locator("fieldset").first
    first_level.get_by_label("Wait for an acknowledgement (minutes)").fill("120")
    screenshot(page, "admin-12-policy-edit")
    page.get_by_role("button", name="Save the policy").click()
    expect(page.get_by_role("status").filter(has_text="Urgent policy saved")).to_be_visible()
    assert urgent.levels.order_by("position").first().wait_minutes == 120

    page.get_by_role("link", name="Webhooks & delivery").click()
    expect(page.get_by_role("row", name=re.compile(re.escape(nurse.email)))).to_contain_text("550 5.1.1")
    expect(page.get_by_text("not-shown")).to_have_count(0)
    screenshot(page, "admin-13-notifications")

    page.get_by_role("link", name="Staff", exact=True).click()
    page.get_by_role("link", name="Add staff").click()
    page.get_by_label("First name").fill("Pat")
    page.get_by_label("Last name").fill("Newcomb")
    page.get_by_label("Username").fill("pat")
    page.get_by_label("Role").select_option("physician")
    page.locator("#id_password").fill(PASSWORD)
    page.get_by_label("Initial password again").fill(PASSWORD)
    screenshot(page, "admin-14-staff-add")
    page.get_by_role("button", name="Add staff member").click()
    expect(page.get_by_role("status").filter(has_text="Pat Newcomb can now log in as pat")).to_be_visible()
    page.get_by_label("Phone").fill("+1 555 0142")
    page.get_by_role("button", name="Save").click()
    screenshot(page, "admin-15-staff-after-add")
    assert Membership.objects.get(user__username="pat", clinic=clinic).phone == "+1 555 0142"

    page.get_by_role("button", name="Deactivate Nico Nurse").click()
    expect(page.get_by_role("alert").filter(has_text="1 pump is still assigned")).to_be_visible()
    screenshot(page, "admin-16-staff-deactivated")
    page.get_by_role("link", name="History of Nico Nurse").click()
    expect(page.locator("ol.history > li").first).to_contain_text("Ada Admin")
    screenshot(page, "admin-17-membership-history")

    assert console_errors == []
