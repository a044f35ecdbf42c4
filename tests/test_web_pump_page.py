"""The patient and pump pages: the projection up front, the chart's data, refill history with
discrepancies and amendments, the change history, the access log, clinic isolation, and a
query count that does not grow with the clinic."""

import json
import re
from datetime import datetime
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from clinics.models import AccessLog
from patients import depletion, services

from .factories import PatientFactory, PumpFactory, drug_product, pump_model
from .test_web_worklist import bulk_pumps

PHX = ZoneInfo("America/Phoenix")


def at(*args):
    return datetime(*args, tzinfo=PHX)


@pytest.fixture
def pump(clinic, nurse, physician):
    """The CLINICAL.md worked example, refilled once since, with an appointment and a call."""
    pump = PumpFactory(
        patient=PatientFactory(clinic=clinic, family_name="Chartwell", given_name="Robin", sci_at_or_above_t6=True),
        pump_model=pump_model("SynchroMed II 40 mL"),
    )
    services.record_refill(
        pump=pump,
        actor=nurse,
        performed_at=at(2026, 1, 5, 9),
        aspirated_ml=D("0"),
        volume_added_ml=D("40"),
        concentration_mcg_per_ml=D("2000"),
        daily_dose_mcg=D("600"),
        drug_product=drug_product("2000"),
        ordered_by=physician,
        now=at(2026, 1, 5, 9),
    )
    services.record_refill(
        pump=pump,
        actor=nurse,
        performed_at=at(2026, 4, 20, 9),
        aspirated_ml=D("4.0"),
        volume_added_ml=D("40"),
        concentration_mcg_per_ml=D("2000"),
        daily_dose_mcg=D("600"),
        drug_product=drug_product("2000"),
        discrepancy_reason="Less than expected: catheter check booked",
        now=at(2026, 4, 20, 9),
    )
    services.schedule_appointment(
        pump=pump, actor=nurse, kind="refill", scheduled_for=at(2026, 7, 31, 9), now=at(2026, 4, 20, 10)
    )
    services.record_pump_event(
        pump=pump, actor=nurse, kind="low_reservoir_alarm", occurred_at=at(2026, 4, 18, 8), now=at(2026, 4, 18, 9)
    )
    return pump


NOW = at(2026, 5, 1, 12)


@pytest.mark.django_db
def test_pump_page_shows_projection_program_and_risk_up_front(client, nurse, physician, pump):
    client.force_login(nurse)
    with time_machine.travel(NOW, tick=False):
        response = client.get(reverse("pump-detail", args=[pump.pk]))
    assert response.status_code == 200
    text = response.content.decode()
    assert "Chartwell, Robin" in text
    assert "High withdrawal risk" in text and "Spinal cord injury at or above T6" in text
    assert "600 mcg/day" in text and "0.3000 mL/day" in text and "2000 mcg/mL" in text
    # The refill at an unchanged dose carries on the physician's order of the first fill.
    ordered = re.search(r'id="program-ordered-by">(.*?)</dd>', text, re.S).group(1)
    assert physician.get_full_name() in ordered and "order of 2026-01-05" in ordered
    projection = pump.projection
    # Times are shown in the clinic's zone (America/Phoenix), never the server's UTC.
    assert f"{projection.lra_at.astimezone(PHX):%Y-%m-%d %H:%M}" in text
    assert f"{projection.empty_at.astimezone(PHX):%Y-%m-%d %H:%M}" in text
    assert f"{projection.refill_due_on:%Y-%m-%d}" in text
    assert "Times are clinic time (America/Phoenix)" in text


@pytest.mark.django_db
def test_pump_page_chart_data_follows_the_stored_projection(client, nurse, pump):
    client.force_login(nurse)
    with time_machine.travel(NOW, tick=False):
        response = client.get(reverse("pump-detail", args=[pump.pk]))
    match = re.search(rb'<script id="reservoir-chart-data" type="application/json">(.*?)</script>', response.content)
    chart = json.loads(match.group(1))
    projection = pump.projection
    fill = projection.as_fill()
    first_nominal = chart["nominal"][0]
    assert first_nominal["y"] == 40.0
    # A point a week after the fill matches depletion.volume_at, nominal and conservative.
    days_from_origin = first_nominal["x"] + 7
    point = next(p for p in chart["nominal"] if abs(p["x"] - days_from_origin) < 1e-3)
    week_later = projection.filled_at + (at(2026, 4, 27, 9) - at(2026, 4, 20, 9))
    assert point["y"] == float(depletion.volume_at(fill, week_later).quantize(D("0.01")))
    conservative = next(p for p in chart["conservative"] if abs(p["x"] - days_from_origin) < 1e-3)
    assert conservative["y"] < point["y"]
    assert chart["lra"][0]["y"] == 2.0
    assert {m["key"] for m in chart["markers"]} >= {"now", "due"}
    assert [r["y"] for r in chart["residuals"]] == [4.0]
    assert chart["residuals"][0]["discrepancy"] is True
    assert b"js/pump_chart.js" in response.content


@pytest.mark.django_db
def test_pump_page_highlights_discrepancy_and_amendment_with_history_diff(client, nurse, pump):
    refill = pump.refills.order_by("-performed_at").first()
    with time_machine.travel(at(2026, 4, 21, 9), tick=False):
        services.amend_refill(refill=refill, actor=nurse, amend_reason="Lot number typo", drug_lot="LOT-12345")
    client.force_login(nurse)
    with time_machine.travel(NOW, tick=False):
        text = client.get(reverse("pump-detail", args=[pump.pk])).content.decode()
    assert "Discrepancy</span> Less than expected: catheter check booked" in text
    assert "Amended</span>" in text and "Lot number typo" in text
    assert "Drug lot" in text and "LOT-12345" in text  # the diff: field, old → new
    assert "refill-discrepancy" in text


@pytest.mark.django_db
def test_pump_page_lists_appointments_and_events(client, nurse, pump):
    client.force_login(nurse)
    with time_machine.travel(NOW, tick=False):
        text = client.get(reverse("pump-detail", args=[pump.pk])).content.decode()
    assert "Fri 2026-07-31 09:00" in text
    assert "Low-reservoir alarm (single tone)" in text
    assert reverse("appointment-status", args=[pump.appointments.get().pk, "complete"]) in text


@pytest.mark.django_db
def test_viewing_a_pump_page_writes_the_access_log(client, nurse, pump):
    client.force_login(nurse)
    client.get(reverse("pump-detail", args=[pump.pk]))
    log = AccessLog.objects.get()
    assert (log.user, log.action, log.object_id, log.clinic_id) == (
        nurse,
        "view",
        pump.patient_id,
        pump.patient.clinic_id,
    )


@pytest.mark.django_db
def test_viewing_a_patient_page_lists_pumps_and_writes_the_access_log(client, nurse, pump):
    client.force_login(nurse)
    with time_machine.travel(NOW, tick=False):
        response = client.get(reverse("patient-detail", args=[pump.patient_id]))
    assert response.status_code == 200
    assert reverse("pump-detail", args=[pump.pk]) in response.content.decode()
    assert AccessLog.objects.filter(user=nurse, action="view", object_id=pump.patient_id).count() == 1


@pytest.mark.django_db
def test_another_clinics_pump_and_patient_answer_404_and_log_nothing(client, other_clinic, nurse, pump):
    theirs = PumpFactory(patient=PatientFactory(clinic=other_clinic))
    client.force_login(nurse)
    for name, pk in (
        ("pump-detail", theirs.pk),
        ("patient-detail", theirs.patient_id),
        ("refill-create", theirs.pk),
        ("pump-event", theirs.pk),
        ("appointment-create", theirs.pk),
    ):
        assert client.get(reverse(name, args=[pk])).status_code == 404, name
    assert client.post(reverse("refill-preview", args=[theirs.pk])).status_code == 404
    assert not AccessLog.objects.exists()


@pytest.mark.django_db
def test_never_filled_pump_page_says_so(client, clinic, nurse):
    pump = PumpFactory(patient=PatientFactory(clinic=clinic))
    client.force_login(nurse)
    text = client.get(reverse("pump-detail", args=[pump.pk])).content.decode()
    assert "Never filled" in text and "No refill recorded" in text
    assert "reservoir-chart-data" not in text


@pytest.mark.django_db
def test_pump_page_makes_the_same_number_of_queries_for_10_and_1000_pumps(client, clinic, nurse, pump):
    client.force_login(nurse)
    url = reverse("pump-detail", args=[pump.pk])
    with time_machine.travel(NOW, tick=False):
        bulk_pumps(clinic, 9, NOW)
        client.get(url)
        with CaptureQueriesContext(connection) as ten:
            assert client.get(url).status_code == 200
        bulk_pumps(clinic, 990, NOW, start=9)
        with CaptureQueriesContext(connection) as thousand:
            assert client.get(url).status_code == 200
    assert len(ten.captured_queries) == len(thousand.captured_queries)
