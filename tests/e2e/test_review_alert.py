"""A physician opens a residual-discrepancy alert in a real browser, sees what the review needs
(the refill under review, earlier residuals, the delivery ratio, the chart) and concludes it with
a follow-up device check; at desktop and phone sizes (issue #10 items 2 and 3)."""

from datetime import timedelta
from decimal import Decimal as D

import pytest
import time_machine
from django.utils import timezone
from playwright.sync_api import expect

from alerts.engine import run_scan
from alerts.models import Alert, AlertKind, ReviewConclusion
from clinics.calendar import calendar_of
from clinics.models import Role
from patients import services
from patients.models import Appointment

from ..factories import PASSWORD, ClinicFactory, filled_pump, member
from .conftest import log_in, screenshot
from .test_work_items import NO_SIDEWAYS, PHONE, phone_page

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.xdist_group("e2e"),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def discrepancy_review():
    """A pump filled 56 days ago at 0.3 mL/day (23.2 mL expected back) whose refill an hour ago
    aspirated 18 mL: out of tolerance (±3.48 mL), a physician review."""
    clinic = ClinicFactory(name="Mesquite Clinic (test)", timezone="America/Phoenix")
    nurse = member(clinic, Role.NURSE, username="nora", first_name="Nora", last_name="Nurse")
    physician = member(clinic, Role.PHYSICIAN, username="pia", first_name="Pia", last_name="Physician")
    now = timezone.now().replace(microsecond=0)
    refilled_at = now - timedelta(hours=1)
    filled_at = refilled_at - timedelta(days=56)
    with time_machine.travel(filled_at, tick=False):
        pump = filled_pump(
            clinic, nurse, filled_at, patient={"family_name": "Quarles", "given_name": "Rita"}, assigned_nurse=nurse
        )
    with time_machine.travel(refilled_at, tick=False):
        services.record_refill(
            pump=pump,
            actor=nurse,
            performed_at=refilled_at,
            aspirated_ml=D("18.00"),
            volume_added_ml=D("40"),
            concentration_mcg_per_ml=D("2000"),
            daily_dose_mcg=D("600"),
            discrepancy_reason="Less drawn back than expected; pocket looked swollen",
            now=refilled_at,
        )
    run_scan()  # the heartbeat: no "alerting is not running" banner
    alert = Alert.objects.get(pump=pump, kind=AlertKind.RESIDUAL_DISCREPANCY)
    return clinic, physician, pump, alert


def next_open_day(clinic, after_days=7):
    calendar = calendar_of(clinic)
    day = timezone.now().astimezone(clinic.zone).date() + timedelta(days=after_days)
    while calendar.why_closed(day):
        day += timedelta(days=1)
    return day


def test_a_physician_sees_the_review_context_and_concludes_with_a_follow_up(live_server, page, browser, console_errors):
    clinic, physician, pump, alert = discrepancy_review()
    follow_up = next_open_day(clinic)
    url = f"{live_server.url}/alerts/{alert.pk}/"
    log_in(page, live_server, physician.username, PASSWORD)
    page.goto(url)
    expect(page.get_by_role("heading", level=1)).to_contain_text("Residual volume discrepancy")
    reviewed = page.locator("#reviewed-refill")
    expect(reviewed.locator("#reviewed-expected")).to_have_text("23.20 mL")
    expect(reviewed.locator("#reviewed-aspirated")).to_have_text("18.00 mL")
    expect(reviewed.locator("#reviewed-difference")).to_have_text("-5.20 mL")
    expect(reviewed.locator("#reviewed-tolerance")).to_have_text("± 3.48 mL")
    expect(reviewed.locator("#reviewed-reason")).to_contain_text("pocket looked swollen")
    expect(page.locator("table.residuals tbody tr")).to_have_count(1)
    expect(page.locator("#review-delivery-ratio")).to_contain_text("not enough refills yet")
    expect(page.locator("#reservoir-chart")).to_be_visible()
    screenshot(page, "review-alert-desktop", "alert-review")

    form = page.locator("#conclusion-form")
    form.get_by_label("Outcome").select_option(label="Pocket fill suspected")
    form.get_by_label("Action taken").select_option(label="Dye or rotor study")
    form.get_by_label("Note").fill("Rotor study and pocket ultrasound before the next refill.")
    form.get_by_label("Follow-up device check").fill(follow_up.isoformat())
    form.get_by_role("button", name="Conclude and resolve").click()

    expect(page.locator(".alert-success")).to_contain_text("concluded: Pocket fill suspected")
    expect(page.locator("header")).to_contain_text("Resolved")
    timeline = page.locator(".timeline")
    expect(timeline).to_contain_text("Review concluded")
    expect(timeline).to_contain_text("Pia Physician")
    expect(timeline.locator(".conclusion")).to_contain_text("Dye or rotor study")
    expect(timeline.locator(".conclusion")).to_contain_text(f"{follow_up:%a %Y-%m-%d} 08:00")
    expect(page.locator("#conclusion-form")).to_have_count(0)
    screenshot(page, "review-alert-concluded-desktop")

    conclusion = ReviewConclusion.objects.get(alert=alert)
    assert conclusion.follow_up_appointment.kind == Appointment.Kind.DEVICE_CHECK
    assert conclusion.follow_up_appointment.scheduled_for.astimezone(clinic.zone).date() == follow_up

    page.goto(f"{live_server.url}/pumps/{pump.pk}/")
    expect(page.locator(".history")).to_contain_text("Review concluded: Pocket fill suspected")
    expect(page.locator(".appointments")).to_contain_text("Device check")

    context, phone = phone_page(browser)
    log_in(phone, live_server, physician.username, PASSWORD)
    phone.goto(url)
    phone.wait_for_load_state("networkidle")
    fit = phone.evaluate(NO_SIDEWAYS)
    assert fit["hidden"] == [] and fit["scroll"] <= PHONE["width"], fit
    expect(phone.locator("#reviewed-difference")).to_be_visible()
    screenshot(phone, "review-alert-phone")
    context.close()
    assert not [e for e in console_errors if "Content Security Policy" in e], console_errors


def test_on_a_phone_the_open_review_and_its_form_fit_the_screen(live_server, browser):
    _clinic, physician, _pump, alert = discrepancy_review()
    context, phone = phone_page(browser)
    log_in(phone, live_server, physician.username, PASSWORD)
    phone.goto(f"{live_server.url}/alerts/{alert.pk}/")
    phone.wait_for_load_state("networkidle")
    fit = phone.evaluate(NO_SIDEWAYS)
    assert fit["hidden"] == [] and fit["scroll"] <= PHONE["width"], fit
    button = phone.get_by_role("button", name="Conclude and resolve")
    button.scroll_into_view_if_needed()
    box = button.bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    screenshot(phone, "review-alert-open-phone")
    context.close()
