"""A physician opens "Needs physician review" from the navigation's badge and countersigns a
nurse's dose order, at desktop and phone sizes (issue 10 items 4 and 5)."""

from datetime import timedelta
from decimal import Decimal as D

import pytest
import time_machine
from django.utils import timezone
from playwright.sync_api import expect

from alerts.engine import run_scan
from alerts.models import Alert, AlertKind
from clinics.models import Role
from patients import services
from patients.models import PumpModel

from ..factories import PASSWORD, ClinicFactory, PatientFactory, PumpFactory, drug_product, member
from .conftest import log_in, screenshot
from .test_work_items import phone_page

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.xdist_group("e2e"),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def nurse_order(clinic, nurse, physician, family_name, dose):
    """A pump filled ten days ago and a nurse's dose change 30 hours ago naming ``physician``."""
    pump = PumpFactory(
        patient=PatientFactory(clinic=clinic, family_name=family_name, given_name="Sam"),
        pump_model=PumpModel.objects.get(name="SynchroMed II 40 mL"),
        assigned_nurse=nurse,
    )
    filled = (timezone.now() - timedelta(days=10)).replace(second=0, microsecond=0)
    ordered = (timezone.now() - timedelta(hours=30)).replace(second=0, microsecond=0)
    with time_machine.travel(filled, tick=False):
        services.record_refill(
            pump=pump,
            actor=nurse,
            performed_at=filled,
            aspirated_ml=D("0"),
            volume_added_ml=D("40"),
            concentration_mcg_per_ml=D("2000"),
            daily_dose_mcg=D("600"),
            drug_product=drug_product("2000"),
            ordered_by=physician,
            now=filled,
        )
    with time_machine.travel(ordered, tick=False):
        return services.change_program(
            pump=pump, actor=nurse, effective_at=ordered, daily_dose_mcg=D(dose), ordered_by=physician, now=ordered
        )


def test_physician_countersigns_a_nurses_order_from_the_review_queue(live_server, page, browser, console_errors):
    clinic = ClinicFactory(name="Mesquite Clinic (test)", timezone="America/Phoenix")
    nurse = member(clinic, Role.NURSE, username="nora", first_name="Nora", last_name="Nurse")
    physician = member(clinic, Role.PHYSICIAN, username="drpat", first_name="Pat", last_name="Okafor")
    first = nurse_order(clinic, nurse, physician, "Ocotillo", 650)
    second = nurse_order(clinic, nurse, physician, "Paloverde", 540)
    run_scan()  # 30 hours unsigned: both escalated as physician reviews (and the heartbeat)
    assert Alert.objects.filter(kind=AlertKind.ORDER_UNSIGNED, status="triggered").count() == 2

    log_in(page, live_server, physician.username, PASSWORD)
    reviews_link = page.get_by_role("link", name="Reviews")
    expect(reviews_link).to_contain_text("2")  # two orders; their alerts count once
    reviews_link.click()
    expect(page.get_by_role("heading", name="Needs physician review")).to_be_visible()
    orders = page.locator("#orders-to-countersign tbody tr")
    expect(orders).to_have_count(2)
    expect(page.locator("#review-counts")).to_contain_text("2 orders to countersign · 2 open reviews")
    expect(orders.first).to_contain_text("over 24 h")
    screenshot(page, "review-queue-desktop", "review-queue")

    orders.filter(has_text="Ocotillo").get_by_role("button", name="Countersign").click()
    expect(page.get_by_role("status").filter(has_text="countersigned")).to_be_visible()
    expect(page.locator("#orders-to-countersign tbody tr")).to_have_count(1)
    expect(page.locator("#review-badge")).to_contain_text("1")
    first.refresh_from_db()
    assert first.verified_by == physician and first.verified_at is not None
    assert Alert.objects.get(program=first).status == Alert.Status.RESOLVED

    page.goto(f"{live_server.url}/pumps/{first.pump_id}/")
    signed = page.locator("#program-countersign")
    expect(signed).to_contain_text("Yes, by Pat Okafor")
    expect(signed).to_contain_text(timezone.localtime(first.verified_at, clinic.zone).strftime("%Y-%m-%d %H:%M"))
    screenshot(page, "countersigned-pump-page-desktop")
    assert console_errors == []

    # On a phone: the queue's rows become cards, nothing scrolls sideways, the button is on screen.
    context, phone = phone_page(browser)
    log_in(phone, live_server, physician.username, PASSWORD)
    phone.goto(f"{live_server.url}/alerts/review/")
    button = phone.locator("#orders-to-countersign").get_by_role("button", name="Countersign")
    expect(button).to_have_count(1)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    box = button.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    screenshot(phone, "review-queue-phone")
    button.click()
    expect(phone.get_by_text("No order waits for a countersignature.")).to_be_visible()
    second.refresh_from_db()
    assert second.verified_by == physician
    context.close()
