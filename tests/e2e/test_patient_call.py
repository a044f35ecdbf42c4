"""A patient call in a real browser: ticking a withdrawal sign says "emergency" at once, before
anything is saved, and the recorded call says it again."""

import pytest
from playwright.sync_api import expect

from patients.models import PumpEvent

from ..factories import PASSWORD
from .conftest import log_in, screenshot
from .test_nurse_day import clinic_day

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.xdist_group("e2e"),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_withdrawal_signs_on_a_call_are_an_emergency_at_once(live_server, page, console_errors):
    nurse, pump = clinic_day()
    log_in(page, live_server, nurse.username, PASSWORD)
    page.goto(f"{live_server.url}/pumps/{pump.pk}/event/")
    warning = page.locator("#emergency-warning")
    expect(warning).to_be_hidden()
    page.get_by_label("Itching without a rash").check()
    expect(warning).to_be_visible()
    expect(warning).to_contain_text("this is an emergency — send the patient to emergency care now")
    page.get_by_label("Itching without a rash").uncheck()
    expect(warning).to_be_hidden()
    page.get_by_label("What was reported").select_option("critical_alarm")
    expect(warning).to_be_visible()
    page.get_by_label("High fever").check()
    page.get_by_role("button", name="Record").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Call recorded: emergency")
    expect(page.get_by_role("alert").filter(has_text="emergency care now")).to_be_visible()
    assert PumpEvent.objects.get(pump=pump).symptoms == ["high_fever"]
    screenshot(page, "patient-call-emergency")
    assert not [e for e in console_errors if "Content Security Policy" in e or "Refused" in e], console_errors
