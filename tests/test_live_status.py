"""The polled status: badge out of band, emergencies counted, and a clean "signed out" after idle logout."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.urls import reverse

from alerts import engine
from patients import services
from patients.models import PumpEvent

from .factories import filled_pump

PHX = ZoneInfo("America/Phoenix")
START = datetime(2026, 3, 2, 9, tzinfo=PHX)
HTMX = {"HX-Request": "true", "HX-Current-URL": "http://testserver/pumps/1/?q=Smith"}


@pytest.mark.django_db
def test_the_poll_swaps_the_navigation_badge_and_counts_an_emergency(client, clinic, nurse, physician):
    pump = filled_pump(clinic, nurse, performed_at=START - timedelta(days=3), assigned_nurse=nurse)
    services.record_pump_event(pump=pump, actor=nurse, kind=PumpEvent.Kind.CRITICAL_ALARM, occurred_at=START, now=START)
    engine.run_scan(START)
    client.force_login(physician)
    with time_machine.travel(START + timedelta(minutes=1), tick=False):
        body = client.get(reverse("alert-status"), headers=HTMX).content.decode()
    assert "1 emergency alert for you." in body
    assert '<span id="alert-badge" hx-swap-oob="true"> <span class="badge bg-danger">1<' in body


@pytest.mark.django_db
def test_after_the_idle_logout_the_poll_says_signed_out_and_stops(client, nurse):
    with time_machine.travel(START, tick=False):
        client.force_login(nurse)
        client.get(reverse("home"))
    with time_machine.travel(START + timedelta(minutes=31), tick=False):
        response = client.get(reverse("alert-status"), headers=HTMX)
    assert response.status_code == 200
    body = response.content.decode()
    assert "Signed out" in body and "sign in again" in body
    assert "hx-trigger" not in body and 'name="password"' not in body  # polling stops; no login form
    assert "?next=/pumps/1/" in body and "Smith" not in body  # the page's path, never its query string


@pytest.mark.django_db
def test_a_live_preview_after_the_session_ended_sends_the_page_to_the_login_form(client, nurse):
    response = client.post("/pumps/1/refill/preview/", headers=HTMX)
    assert response.status_code == 204 and response["HX-Redirect"] == reverse("login")
