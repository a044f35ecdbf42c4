"""Liveness, readiness and metrics: what a load balancer and a monitoring system read."""

import copy
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import connections
from django.db.backends.sqlite3.base import DatabaseWrapper as SQLiteWrapper
from django.urls import reverse

from alerts import engine
from alerts.models import Notification
from itb_tracker.health import database_readiness

from .factories import filled_pump
from .services import free_port, project_celery_app_on, unique_queue

PHX = ZoneInfo("America/Phoenix")
OVERDUE = datetime(2026, 4, 30, 9, tzinfo=PHX)
TOKEN = "metrics-test-token"


def test_liveness_answers_without_touching_the_database(client):
    # No django_db mark: any database access here would raise.
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]


@pytest.mark.django_db
def test_readiness_reports_a_migrated_database_and_the_broker(client):
    engine.run_scan(OVERDUE)
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["database"] == "ok"
    assert body["broker"]["reachable"] is True and body["broker"]["queue_depth"] >= 0
    assert body["last_scan_age_seconds"] is not None


def _sqlite_connection(name) -> SQLiteWrapper:
    settings_dict = copy.deepcopy(connections["default"].settings_dict)
    settings_dict.update(ENGINE="django.db.backends.sqlite3", NAME=str(name), OPTIONS={})
    return SQLiteWrapper(settings_dict, alias="readiness-probe")


@pytest.mark.django_db
def test_an_empty_database_is_not_ready(tmp_path):
    connection = _sqlite_connection(tmp_path / "empty.sqlite3")
    try:
        ready, reason = database_readiness(connection)
    finally:
        connection.close()
    assert not ready and reason.startswith("database not migrated:")


@pytest.mark.django_db
def test_an_unreachable_database_is_not_ready(tmp_path):
    connection = _sqlite_connection(tmp_path / "no-such-folder" / "db.sqlite3")
    ready, reason = database_readiness(connection)
    assert not ready and reason.startswith("database unreachable:")


@pytest.mark.django_db
def test_a_broker_outage_never_takes_the_pages_off_the_load_balancer(client):
    # Nothing listens on this port: the broker is down, the web must still be "ready".
    with project_celery_app_on(f"redis://127.0.0.1:{free_port()}/0", unique_queue("readyz")):
        response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["broker"] == {
        "reachable": False,
        "queue": response.json()["broker"]["queue"],
        "error": response.json()["broker"]["error"],
    }


def test_metrics_are_off_until_a_token_is_set(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404


@pytest.mark.django_db
def test_metrics_need_the_bearer_token(client, settings):
    settings.METRICS_TOKEN = TOKEN
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def _scrape(client) -> str:
    response = client.get(reverse("metrics"), headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    return response.content.decode()


@pytest.mark.django_db
def test_an_overdue_pump_shows_in_the_metrics_by_clinic_id_without_patient_data(client, settings, clinic, nurse):
    settings.METRICS_TOKEN = TOKEN
    filled_pump(clinic, nurse, patient={"family_name": "Metricsdottir", "mrn": "MRN-METRICS-1"}, assigned_nurse=nurse)
    engine.run_scan(OVERDUE)
    email = Notification.objects.filter(channel="email").first()
    Notification.objects.filter(pk=email.pk).update(status="sent", sent_at=email.created_at + timedelta(seconds=42))
    with time_machine.travel(OVERDUE + timedelta(minutes=10), tick=False):
        text = _scrape(client)
    assert f'itb_alerts_open{{clinic="{clinic.pk}",severity="urgent"}} 1.0' in text
    assert 'itb_notifications_total{channel="email",status="sent"} 1.0' in text
    assert "itb_scan_last_success_timestamp_seconds " in text
    assert "itb_scan_duration_seconds " in text
    assert 'itb_notification_delivery_latency_seconds{channel="email",quantile="0.5"} 42.0' in text
    assert "itb_broker_reachable 1.0" in text
    for identifier in ("Metricsdottir", "MRN-METRICS-1", clinic.name):
        assert identifier not in text


@pytest.mark.django_db
def test_a_scrape_costs_the_same_queries_at_any_size(client, settings, clinic, nurse, django_assert_num_queries):
    settings.METRICS_TOKEN = TOKEN
    filled_pump(clinic, nurse, assigned_nurse=nurse)
    engine.run_scan(OVERDUE)
    with django_assert_num_queries(4) as small:
        _scrape(client)
    for _ in range(5):
        filled_pump(clinic, nurse, assigned_nurse=nurse)
    engine.run_scan(OVERDUE + timedelta(minutes=5))
    with django_assert_num_queries(len(small.captured_queries)):
        _scrape(client)
