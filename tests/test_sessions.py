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


@pytest.mark.django_db
def test_page_views_move_the_idle_clock_at_most_once_a_minute(client, nurse):
    start = datetime(2026, 3, 1, 9, tzinfo=PHX)

    def view_at(seconds):
        with time_machine.travel(start + timedelta(seconds=seconds), tick=False):
            client.get(reverse("calendar"))
            return client.session["itb_last_activity"]

    with time_machine.travel(start, tick=False):
        client.force_login(nurse)
    assert view_at(0) == start.timestamp()
    assert view_at(59) == start.timestamp()  # no session write for this view
    assert view_at(61) == (start + timedelta(seconds=61)).timestamp()


@pytest.mark.django_db
def test_django_model_permissions_are_never_looked_up_for_the_navigation(client, nurse, django_assert_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.force_login(nurse)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(reverse("schedule-week")).status_code == 200
    assert not [q for q in queries.captured_queries if "auth_permission" in q["sql"]]
    assert not nurse.has_perm("clinics.manage_clinic")
