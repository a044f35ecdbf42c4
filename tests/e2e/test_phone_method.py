"""A nurse adds her hospital paging gateway (``json://``) on My notifications, verifies it with the
code that arrived there, and receives the next emergency on it (issue 17). Apprise really posts to
a receiver this test starts; the test reads what arrived."""

import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from alerts import delivery, engine
from alerts.models import Alert, Notification

from ..factories import PASSWORD, put_on_rota
from ..receivers import JsonReceiver
from .conftest import log_in, screenshot
from .test_nurse_day import clinic_day

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.xdist_group("e2e"),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_nurse_adds_a_pager_verifies_it_and_receives_the_next_emergency(live_server, page, console_errors, settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]  # the receiver listens on 127.0.0.1
    nurse, pump = clinic_day()
    put_on_rota(pump.patient.clinic, nurse)
    with JsonReceiver() as receiver:
        log_in(page, live_server, nurse.username, PASSWORD)
        page.get_by_role("link", name="My notifications").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("My notifications")
        expect(page.locator("[data-no-phone]")).to_be_visible()
        page.get_by_label("Name").fill("Hospital pager")
        page.get_by_label("Address (apprise URL)").fill(receiver.url("page"))
        page.get_by_role("button", name="Add and send a code").click()
        expect(page.get_by_role("status").filter(has_text="A 6-digit code was sent")).to_be_visible()
        expect(page.get_by_text("Not verified")).to_be_visible()
        screenshot(page, "my-notifications-code-sent")

        assert len(receiver.received) == 1
        code = re.search(r"\b(\d{6})\b", receiver.messages[0]).group(1)
        page.get_by_label("6-digit code for Hospital pager").fill(code)
        page.get_by_role("button", name="Verify Hospital pager").click()
        expect(page.get_by_role("status").filter(has_text="is verified")).to_be_visible()
        expect(page.locator("[data-no-phone]")).to_have_count(0)
        expect(page.locator("#rule-40")).to_contain_text("Hospital pager")
        screenshot(page, "my-notifications-verified", docs_name="my-notifications")
        assert receiver.url("page") not in page.content()

        # The next emergency: a patient calls with a critical alarm.
        page.goto(f"{live_server.url}/pumps/{pump.pk}/event/")
        page.get_by_label("What was reported").select_option("critical_alarm")
        page.get_by_role("button", name="Record").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Call recorded: emergency")
        alert = Alert.objects.get(pump=pump, kind="pump_alarm")

        # What beat and a worker do: the scan's escalation step, then each delivery.
        now = timezone.now()
        engine.advance_escalations(now)
        for pk in Notification.objects.filter(alert=alert, status="pending").values_list("pk", flat=True):
            delivery.deliver(pk, now)
        arrived = receiver.messages[1:]
        assert len(arrived) == 1 and alert.reference in arrived[0] and "EMERGENCY" in arrived[0]
        assert len(arrived[0]) <= 160
        for identifier in (pump.patient.family_name, pump.patient.mrn, pump.serial_number):
            assert identifier not in arrived[0]

        page.goto(f"{live_server.url}/alerts/{alert.pk}/")
        expect(page.get_by_text("Hospital pager").first).to_be_visible()
        screenshot(page, "emergency-delivered-to-pager")
    assert not [e for e in console_errors if "Content Security Policy" in e or "Refused" in e], console_errors
