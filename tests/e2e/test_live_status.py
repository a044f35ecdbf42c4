"""The banner and the navigation's alert badge refresh together, without a reload; once the
session has ended the poll says "Signed out", never the login page inside the banner."""

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from playwright.sync_api import expect

from alerts import engine
from patients import services
from patients.models import PumpEvent

from ..factories import PASSWORD
from .conftest import log_in, screenshot
from .test_nurse_day import clinic_day

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.xdist_group("e2e"),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def refresh_status(page):
    """What the 60-second poll (or the tab becoming visible again) does."""
    page.evaluate("document.body.dispatchEvent(new Event('itb-refresh'))")


def test_a_new_emergency_shows_in_the_badge_and_banner_without_a_reload(live_server, page, console_errors):
    nurse, pump = clinic_day()
    # A pump alarm's first escalation level is the clinic's physicians (the default policy).
    physician = get_user_model().objects.get(username="paz")
    log_in(page, live_server, physician.username, PASSWORD)
    badge = page.locator("#alert-badge")
    before = int(badge.inner_text().split()[0]) if badge.inner_text().strip() else 0
    expect(page.get_by_text("emergency alert for you")).to_have_count(0)

    services.record_pump_event(
        pump=pump, actor=nurse, kind=PumpEvent.Kind.CRITICAL_ALARM, occurred_at=timezone.now(), notes="Two-tone alarm"
    )
    engine.run_scan()  # as beat (or the immediate scan the event asks for) would
    refresh_status(page)

    expect(badge).to_contain_text(str(before + 1))
    expect(page.get_by_text("1 emergency alert for you.")).to_be_visible()
    page.wait_for_timeout(100)
    screenshot(page, "live-status-emergency")
    assert page.url == f"{live_server.url}/"  # no reload, no navigation

    page.context.clear_cookies()  # the session ends (idle logout, or signed out elsewhere)
    refresh_status(page)
    expect(page.locator("#alert-status")).to_contain_text("Signed out — sign in again")
    expect(page.locator("#alert-status form")).to_have_count(0)  # not the login page
    expect(badge).to_be_empty()
    screenshot(page, "live-status-signed-out")
    page.locator("#alert-status").get_by_role("link", name="sign in again").click()
    expect(page.get_by_label("Username")).to_be_visible()
    assert not [e for e in console_errors if "Content Security Policy" in e or "Refused" in e], console_errors
