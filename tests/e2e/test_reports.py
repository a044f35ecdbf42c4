"""The clinic report in a real browser: a physician and a clinic admin open it at desktop and
phone width, the trend charts draw under the content-security policy, the period chooser shows
the fields of the kind chosen, and the printed page fits A4 and US Letter (PDF through
Chromium's print path; the first page rendered to PNG when poppler's pdftoppm is installed)."""

import shutil
import subprocess
from datetime import timedelta
from decimal import Decimal as D

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from alerts.engine import record_heartbeat
from clinics.models import Role
from patients import services
from patients.models import DrugProduct, PumpModel

from ..factories import PASSWORD, ClinicFactory, PatientFactory, PumpFactory, member
from .conftest import SCREENSHOTS, log_in, screenshot

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.xdist_group("e2e"),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
# A4 is 21 cm wide, Letter 21.59 cm; less the report's 1.2 cm margins, A4 leaves 18.6 cm (703 px).
A4_CONTENT_PX = 703


def ironwood_clinic():
    """A fictional clinic with a year of refills: six pumps refilled every 90 days or so."""
    model, _ = PumpModel.objects.get_or_create(
        manufacturer="Medtronic",
        name="SynchroMed II 40 mL",
        defaults={"reservoir_ml": D("40"), "default_lra_ml": D("2")},
    )
    drug, _ = DrugProduct.objects.get_or_create(
        name="Gablofen", concentration_mcg_per_ml=D("2000"), defaults={"max_days_in_pump": 180}
    )
    clinic = ClinicFactory(name="Ironwood Pump Clinic (test)", timezone="America/Phoenix")
    admin = member(clinic, Role.CLINIC_ADMIN, username="ida", first_name="Ida", last_name="Admin")
    nurse = member(clinic, Role.NURSE, username="nell", first_name="Nell", last_name="Nurse")
    physician = member(clinic, Role.PHYSICIAN, username="pia", first_name="Pia", last_name="Physician")
    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    for index in range(6):
        pump = PumpFactory(
            patient=PatientFactory(clinic=clinic, family_name=f"Reportless{index}", mrn=f"IRON{index:04d}"),
            pump_model=model,
            assigned_nurse=nurse,
        )
        at = now - timedelta(days=400 - 11 * index)
        residual = None
        while at < now - timedelta(days=1):
            services.record_refill(
                pump=pump,
                actor=nurse,
                performed_at=at,
                aspirated_ml=D("0") if residual is None else residual,
                volume_added_ml=D("40"),
                concentration_mcg_per_ml=D("2000"),
                daily_dose_mcg=D("600"),
                drug_product=drug,
                drug_lot=f"LOT-IRON-{index}",
                ordered_by=physician if residual is None else None,
                now=at,
            )
            gap = 80 + 7 * ((index + at.month) % 5)
            residual = D("40") - D("0.3") * gap
            at += timedelta(days=gap)
    record_heartbeat(timezone.now(), {})  # alerting runs: no "not running" banner over the report
    return clinic, admin, nurse, physician


def open_report(page, live_server, clinic):
    page.goto(f"{live_server.url}/reports/")
    expect(page).to_have_url(f"{live_server.url}/reports/{clinic.pk}/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("report for")
    charts = page.locator("[data-trend]")
    count = charts.count()
    assert count > 5
    # Each trend is drawn, or says it has no data (a figure without a value in any month).
    expect(page.locator("[data-trend][data-drawn='true']")).to_have_count(count)


def fits_width(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")


def test_a_physician_reads_the_report_on_a_desktop_and_a_phone(live_server, page, console_errors):
    clinic, _admin, _nurse, physician = ironwood_clinic()
    log_in(page, live_server, physician.username, PASSWORD)
    expect(page.get_by_role("link", name="Reports")).to_be_visible()
    open_report(page, live_server, clinic)
    expect(
        page.get_by_text("The clinic's administrators see the list.").or_(page.get_by_text("None in the period."))
    ).to_be_visible()
    screenshot(page, "report-physician-desktop", docs_name="report")

    # The chooser shows the quarter's field only once "Quarter" is chosen.
    expect(page.get_by_label("Quarter", exact=True)).to_be_hidden()
    page.get_by_label("Period", exact=True).select_option("quarter")
    expect(page.get_by_label("Quarter", exact=True)).to_be_visible()
    expect(page.get_by_label("Month", exact=True)).to_be_hidden()
    page.get_by_role("button", name="Show report").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("report for Q")

    page.set_viewport_size(PHONE)
    page.reload()
    expect(page.locator("[data-trend][data-drawn='true']").first).to_be_visible()
    assert fits_width(page), "the report scrolls sideways on a phone"
    screenshot(page, "report-physician-phone")

    page.get_by_role("link", name="How each figure is computed").first.click()
    expect(page).to_have_url(f"{live_server.url}/reports/definitions/")
    assert console_errors == []


def test_a_clinic_admin_reads_and_prints_the_report_on_a4_and_letter(live_server, page, console_errors):
    clinic, admin, _nurse, _physician = ironwood_clinic()
    page.set_viewport_size(DESKTOP)
    log_in(page, live_server, admin.username, PASSWORD)
    open_report(page, live_server, clinic)
    expect(page.get_by_role("link", name="Figures as CSV")).to_be_visible()
    screenshot(page, "report-admin-desktop")
    with page.expect_download() as download:
        page.get_by_role("link", name="Figures as CSV").click()
    assert download.value.suggested_filename.startswith("report-figures-ironwood-pump-clinic-test-")

    page.set_viewport_size(PHONE)
    page.reload()
    expect(page.locator("[data-trend][data-drawn='true']").first).to_be_visible()
    assert fits_width(page), "the report scrolls sideways on a phone"
    screenshot(page, "report-admin-phone")

    # Printed: the controls go, and at the printed width nothing sticks out.
    page.set_viewport_size({"width": A4_CONTENT_PX, "height": 1000})
    page.emulate_media(media="print")
    expect(page.get_by_role("button", name="Show report")).to_be_hidden()
    expect(page.get_by_role("link", name="Figures as CSV")).to_be_hidden()
    assert fits_width(page), "the printed report is wider than an A4 page"
    screenshot(page, "report-admin-print-media")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for paper in ("A4", "Letter"):
        pdf = SCREENSHOTS / f"report-{paper.lower()}.pdf"
        page.pdf(path=str(pdf), format=paper, print_background=True)
        assert pdf.stat().st_size > 10_000
        if shutil.which("pdftoppm"):
            subprocess.run(  # noqa: S603 - fixed arguments
                ["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "2", str(pdf), str(pdf.with_suffix(""))],  # noqa: S607
                check=True,
            )
        if shutil.which("pdfinfo"):
            info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout  # noqa: S603,S607
            assert f"({paper.lower()})" in info.lower(), info
    assert console_errors == []
