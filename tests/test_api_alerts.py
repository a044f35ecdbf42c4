"""Alerts through the API: the user's clinics only; acknowledging by POST."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from rest_framework.test import APIClient

from alerts import engine
from alerts.models import Alert
from clinics.models import Role

from .factories import filled_pump, member

PHX = ZoneInfo("America/Phoenix")
OVERDUE = datetime(2026, 4, 30, 9, tzinfo=PHX)


@pytest.fixture
def alert(clinic, nurse):
    filled_pump(clinic, nurse, assigned_nurse=nurse)
    engine.run_scan(OVERDUE)
    return Alert.objects.get()


def client_for(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.mark.django_db
def test_nurse_lists_and_acknowledges_an_overdue_alert(nurse, alert):
    client = client_for(nurse)
    with time_machine.travel(OVERDUE + timedelta(minutes=3), tick=False):
        listed = client.get("/api/v1/alerts/").json()
        assert [(a["id"], a["kind"], a["severity"], a["status"]) for a in listed] == [
            (alert.pk, "refill_overdue", "urgent", "triggered")
        ]
        assert listed[0]["raised_at"] == "2026-04-30T09:00:00-07:00"
        response = client.post(f"/api/v1/alerts/{alert.pk}/acknowledge/")
    assert response.status_code == 200
    assert response.json()["status"] == "acknowledged"
    assert response.json()["acknowledged_at"] == "2026-04-30T09:03:00-07:00"
    with time_machine.travel(OVERDUE + timedelta(minutes=4), tick=False):
        again = client.post(f"/api/v1/alerts/{alert.pk}/acknowledge/")
    assert again.status_code == 400 and "status" in again.json()


@pytest.mark.django_db
def test_other_clinics_alerts_are_invisible_and_answer_404(other_clinic, alert):
    outsider = client_for(member(other_clinic, Role.NURSE))
    assert outsider.get("/api/v1/alerts/").json() == []
    assert outsider.post(f"/api/v1/alerts/{alert.pk}/acknowledge/").status_code == 404


@pytest.mark.django_db
def test_alerts_need_authentication(alert):
    assert APIClient().get("/api/v1/alerts/").status_code in (401, 403)
