"""Idle sessions expire; failed logins are throttled."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.urls import reverse

from .factories import PASSWORD

PHX = ZoneInfo("America/Phoenix")


@pytest.mark.django_db
def test_idle_session_expires_after_thirty_minutes(client, nurse):
    start = datetime(2026, 3, 1, 9, tzinfo=PHX)
    with time_machine.travel(start, tick=False):
        assert client.post(reverse("login"), {"username": "nurse", "password": PASSWORD}).status_code == 302
    with time_machine.travel(start + timedelta(minutes=29), tick=False):
        assert client.get(reverse("home")).status_code == 200  # activity moves the idle clock
    with time_machine.travel(start + timedelta(minutes=58), tick=False):
        assert client.get(reverse("home")).status_code == 200
    with time_machine.travel(start + timedelta(minutes=89), tick=False):
        response = client.get(reverse("home"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.django_db
def test_failed_logins_are_throttled(client, nurse, settings):
    settings.AXES_FAILURE_LIMIT = 3
    for _ in range(3):
        client.post(reverse("login"), {"username": "nurse", "password": "wrong-password"})
    response = client.post(reverse("login"), {"username": "nurse", "password": PASSWORD})
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session
