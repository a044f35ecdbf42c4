"""A clinic administrator brings the caseload in, in a real browser: download the template, upload a
3-row file with one bad row, read the dry run's refusal (row and column), fix it, import, and find
the three pumps on the worklist with the due dates the dry run showed."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from clinics.models import Role
from patients.models import Pump

from ..factories import PASSWORD, ClinicFactory, member
from ..test_caseload_import import caseload_row, csv_bytes
from .conftest import log_in, screenshot
from .test_admin_flow import catalogue

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.xdist_group("e2e"),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_admin_imports_a_caseload_after_fixing_a_refused_row(live_server, page, console_errors, tmp_path):
    catalogue()
    clinic = ClinicFactory(name="Palo Verde Pump Clinic (test)", timezone="America/Phoenix")
    admin = member(clinic, Role.CLINIC_ADMIN, username="pat-admin", first_name="Pat", last_name="Admin")
    physician = member(clinic, Role.PHYSICIAN, username="dr-lee", first_name="Dana", last_name="Lee")
    local_now = timezone.now().astimezone(clinic.zone).replace(second=0, microsecond=0)
    fills = [local_now - timedelta(days=days) for days in (30, 80, 100)]
    rows = [
        caseload_row(i + 1, physician, last_refill_at=f"{at:%Y-%m-%d %H:%M}", ordering_physician="Dana Lee")
        for i, at in enumerate(fills)
    ]
    rows[1]["volume_added_ml"] = "45"  # more than the 40 mL reservoir holds

    log_in(page, live_server, admin.username, PASSWORD)
    page.get_by_role("link", name="Clinic admin").click()
    page.get_by_role("link", name="Import caseload").click()
    expect(page.get_by_role("heading", name="Import the clinic's caseload")).to_be_visible()
    with page.expect_download() as download:
        page.get_by_role("link", name=re.compile("Download the template \\(XLSX")).click()
    assert download.value.suggested_filename == "itb-caseload-template.xlsx"
    screenshot(page, "caseload-01-import-page", "caseload-import")

    bad = tmp_path / "caseload.csv"
    bad.write_bytes(csv_bytes(rows))
    page.get_by_label("Caseload file (CSV or XLSX)").set_input_files(str(bad))
    page.get_by_role("button", name="Check the file (dry run)").click()
    expect(page.get_by_role("alert").filter(has_text="1 row refused")).to_be_visible()
    refused = page.get_by_role("row", name=re.compile("^3 "))
    expect(refused).to_contain_text("volume_added_ml")
    expect(refused).to_contain_text("never overfill")
    expect(page.get_by_role("button", name=re.compile("Import these"))).to_have_count(0)
    screenshot(page, "caseload-02-refused-row")
    assert not Pump.objects.exists()

    rows[1]["volume_added_ml"] = "40"
    good = tmp_path / "caseload-fixed.csv"
    good.write_bytes(csv_bytes(rows))
    page.get_by_label("Caseload file (CSV or XLSX)").set_input_files(str(good))
    page.get_by_role("button", name="Check the file (dry run)").click()
    expect(page.get_by_role("status").filter(has_text="Every row passes")).to_be_visible()
    due = {}
    for number, row in enumerate(rows, start=2):
        cells = page.get_by_role("row", name=re.compile(f"^{number} ")).get_by_role("cell")
        due[row["mrn"]] = cells.nth(3).inner_text().strip()
    assert all(re.fullmatch(r"\w{3} \d{4}-\d{2}-\d{2}", d) for d in due.values()), due
    screenshot(page, "caseload-03-dry-run")

    page.get_by_role("button", name="Import these 3 pumps").click()
    expect(page.get_by_role("status").filter(has_text="Imported 3 pumps")).to_be_visible()
    screenshot(page, "caseload-04-worklist")
    for mrn, due_text in due.items():
        expect(page.get_by_role("row", name=re.compile(mrn))).to_contain_text(due_text)
    assert Pump.objects.filter(patient__clinic=clinic).count() == 3
    assert not [e for e in console_errors if "Content Security Policy" in e or "Refused" in e], console_errors
