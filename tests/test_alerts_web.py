"""Alert pages: the inbox, acknowledging by POST only, the banner, polling that never keeps a session alive."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.urls import reverse

from alerts import engine
from alerts.models import Alert
from clinics.models import Role

from .factories import filled_pump, member

PHX = ZoneInfo("America/Phoenix")
OVERDUE = datetime(2026, 4, 30, 9, tzinfo=PHX)


@pytest.fixture
def overdue_alert(clinic, nurse):
    pump = filled_pump(clinic, nurse, patient={"family_name": "Overdueson"}, assigned_nurse=nurse)
    engine.run_scan(OVERDUE)
    return Alert.objects.get(pump=pump)


@pytest.mark.django_db
def test_opening_the_alert_link_never_acknowledges_it(client, nurse, overdue_alert):
    client.force_login(nurse)
    with time_machine.travel(OVERDUE + timedelta(minutes=1), tick=False):
        response = client.get(reverse("alert-detail", args=[overdue_alert.pk]))
    assert response.status_code == 200 and b"Overdueson" in response.content
    overdue_alert.refresh_from_db()
    assert overdue_alert.status == "triggered"


@pytest.mark.django_db
def test_nurse_acknowledges_from_the_alert_page(client, nurse, overdue_alert):
    client.force_login(nurse)
    with time_machine.travel(OVERDUE + timedelta(minutes=2), tick=False):
        response = client.post(reverse("alert-acknowledge", args=[overdue_alert.pk]))
    assert response.status_code == 302
    overdue_alert.refresh_from_db()
    assert (overdue_alert.status, overdue_alert.acknowledged_by) == ("acknowledged", nurse)
    assert overdue_alert.timeline.filter(kind="acknowledged", actor=nurse).exists()


@pytest.mark.django_db
def test_other_clinic_alert_answers_404(client, other_clinic, overdue_alert):
    outsider = member(other_clinic, Role.NURSE)
    client.force_login(outsider)
    assert client.get(reverse("alert-detail", args=[overdue_alert.pk])).status_code == 404
    assert client.post(reverse("alert-acknowledge", args=[overdue_alert.pk])).status_code == 404


@pytest.mark.django_db
def test_inbox_lists_my_open_alerts_with_unread_count(client, nurse, overdue_alert):
    client.force_login(nurse)
    with time_machine.travel(OVERDUE + timedelta(minutes=1), tick=False):
        response = client.get(reverse("alert-inbox"))
    assert overdue_alert.reference.encode() in response.content
    assert response.context["unread_alerts"] == 1


@pytest.mark.django_db
def test_banner_warns_when_alerting_has_not_run(client, nurse):
    client.force_login(nurse)
    with time_machine.travel(OVERDUE, tick=False):
        assert b"Alerting is not running" in client.get(reverse("alert-status")).content
        engine.run_scan(OVERDUE)
        assert b"Alerting is not running" not in client.get(reverse("alert-status")).content
    with time_machine.travel(OVERDUE + timedelta(minutes=16), tick=False):
        assert b"Alerting is not running" in client.get(reverse("alert-status")).content


@pytest.mark.django_db
def test_polling_the_status_never_extends_an_idle_session(client, nurse, settings):
    settings.SESSION_IDLE_TIMEOUT = timedelta(minutes=30)
    start = datetime(2026, 3, 1, 9, tzinfo=PHX)
    with time_machine.travel(start, tick=False):
        client.force_login(nurse)
        assert client.get(reverse("home")).status_code == 200
    for minutes in (10, 20, 29):
        with time_machine.travel(start + timedelta(minutes=minutes), tick=False):
            assert client.get(reverse("alert-status")).status_code == 200
    with time_machine.travel(start + timedelta(minutes=31), tick=False):
        response = client.get(reverse("home"))
    assert response.status_code == 302 and "timeout=1" in response["Location"]


@pytest.mark.django_db
def test_nurse_acknowledges_from_the_inbox(client, nurse, overdue_alert):
    client.force_login(nurse)
    with time_machine.travel(OVERDUE + timedelta(minutes=2), tick=False):
        page = client.get(reverse("alert-inbox"))
        assert reverse("alert-acknowledge", args=[overdue_alert.pk]).encode() in page.content
        response = client.post(reverse("alert-acknowledge", args=[overdue_alert.pk]), {"next": "inbox"})
    assert response["Location"] == reverse("alert-inbox")
    overdue_alert.refresh_from_db()
    assert overdue_alert.status == "acknowledged"


@pytest.mark.django_db
def test_inbox_query_count_does_not_grow_with_alerts(client, clinic, nurse, django_assert_max_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def inbox_queries():
        with time_machine.travel(OVERDUE + timedelta(minutes=1), tick=False), CaptureQueriesContext(connection) as q:
            assert client.get(reverse("alert-inbox")).status_code == 200
        return len(q)

    def overdue_pump():
        filled_pump(clinic, nurse, assigned_nurse=nurse)

    client.force_login(nurse)
    overdue_pump()
    engine.run_scan(OVERDUE)
    inbox_queries()  # the first page view of the session moves the idle clock (a session write)
    one = inbox_queries()
    for _ in range(8):
        overdue_pump()
    engine.run_scan(OVERDUE)
    assert Alert.objects.count() == 9
    assert inbox_queries() == one
