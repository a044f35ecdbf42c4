"""Alert times in the clinic's zone: an alert raised at 22:55Z in Phoenix reads 15:55 on every page,
in emails' plain text and (with its offset) in webhooks; timeline moments are data, not text."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.urls import reverse

from alerts import services as alert_services
from alerts.channels import email as email_channel
from alerts.channels import message_fields
from alerts.engine import raise_alert
from alerts.models import AlertEvent, AlertKind, Severity
from patients import services

from .factories import filled_pump

RAISED = datetime(2026, 3, 2, 22, 55, tzinfo=UTC)  # 15:55 in Phoenix (UTC-7 all year)


@pytest.fixture
def alarm(clinic, nurse):
    pump = filled_pump(clinic, nurse, patient={"family_name": "Zoneton"}, assigned_nurse=nurse)
    alert, _report = raise_alert(
        pump_id=pump.pk,
        clinic_id=clinic.pk,
        kind=AlertKind.PUMP_ALARM,
        severity=Severity.EMERGENCY,
        now=RAISED,
        detail="Critical alarm reported: emergency",
    )
    return alert


@pytest.mark.django_db
def test_alert_raised_at_2255z_reads_1555_on_the_inbox_and_the_alert_page(client, nurse, alarm):
    client.force_login(nurse)
    with time_machine.travel(RAISED + timedelta(minutes=5), tick=False):
        for url in (reverse("alert-inbox"), reverse("alert-detail", args=[alarm.pk])):
            html = client.get(url).content.decode()
            assert "2026-03-02 15:55" in html, url
            assert "22:55" not in html, url
            assert html.count("America/Phoenix") == 1, url  # the zone named once per page


@pytest.mark.django_db
def test_acknowledgement_timeline_keeps_the_realert_time_as_data(client, nurse, alarm):
    alert = alert_services.acknowledge_alert(alert=alarm, actor=nurse, now=RAISED)
    event = alert.timeline.get(kind=AlertEvent.Kind.ACKNOWLEDGED)
    assert "UTC" not in event.detail and event.subject_at == alert.next_step_at
    client.force_login(nurse)
    local_realert = alert.next_step_at.astimezone(alarm.clinic.zone)
    html = client.get(reverse("alert-detail", args=[alarm.pk])).content.decode()
    assert f"{local_realert:%Y-%m-%d %H:%M}" in html
    assert f"{alert.next_step_at.astimezone(UTC):%H:%M}" not in html


@pytest.mark.django_db
def test_refill_resolution_stores_the_refill_time_as_data(clinic, nurse, alarm):
    performed_at = RAISED + timedelta(hours=1)
    services.record_refill(
        pump=alarm.pump,
        actor=nurse,
        performed_at=performed_at,
        aspirated_ml=Decimal("1.5"),
        volume_added_ml=Decimal(40),
        concentration_mcg_per_ml=Decimal(2000),
        daily_dose_mcg=Decimal(600),
        discrepancy_reason="Pump alarm: empty",
        now=performed_at,
    )
    event = alarm.timeline.get(kind=AlertEvent.Kind.RESOLVED)
    assert event.subject_at == performed_at and "UTC" not in event.detail


@pytest.mark.django_db
def test_email_plain_text_says_clinic_time_and_webhook_carries_the_offset(alarm):
    _subject, body = email_channel.render(alarm)
    assert "Raised: 2026-03-02 15:55 (America/Phoenix)" in body and "22:55" not in body
    assert message_fields(alarm)["raised_at"] == "2026-03-02T15:55:00-07:00"
    assert "Zoneton" not in body
