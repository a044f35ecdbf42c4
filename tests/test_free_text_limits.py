"""Notes and reasons have a maximum length (issue 9, item 10: a 100,000-character note was
accepted and stretched the pump page to 829,000 px): 2,000 characters for notes, 500 for reasons.
The API answers 400 on the field, the forms show the error beside it, the services refuse it, and
text stored before the limits is kept whole."""

import re
from datetime import datetime
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from alerts import services as alert_services
from alerts.models import Alert
from patients import services
from patients.models import Appointment, Patient, PumpEvent, RefillVisit

from .factories import drug_product, filled_pump
from .test_api_helpers import client_for, clock, fill_worked_example, first_fill, make_pump, post_refill, url
from .test_web_refill import refill_data

PHX = ZoneInfo("America/Phoenix")
NOW = "2026-02-01T10:00:00-07:00"
NOTE_OVER = "n" * 2001
REASON_OVER = "r" * 501


@pytest.fixture
def pump(clinic, nurse):
    return fill_worked_example(make_pump(clinic), nurse)


def refused_on(response, field):
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()
    return response.json()[field][0]


# --- the API: 400 on the field --------------------------------------------------------------------


@pytest.mark.django_db
def test_api_refuses_a_2001_character_refill_note_and_takes_2000(clinic, nurse):
    pump = make_pump(clinic)
    message = refused_on(post_refill(nurse, pump, first_fill(notes=NOTE_OVER)), "notes")
    assert "2000" in message
    assert not RefillVisit.objects.filter(pump=pump).exists()
    assert post_refill(nurse, pump, first_fill(notes="n" * 2000)).status_code == 201


@pytest.mark.django_db
def test_api_refuses_a_501_character_discrepancy_reason(pump, nurse):
    body = first_fill(performed_at="2026-04-20T09:00:00-07:00", aspirated_ml=2, discrepancy_reason=REASON_OVER)
    refused_on(post_refill(nurse, pump, body, now="2026-04-20T09:30:00-07:00"), "discrepancy_reason")
    assert RefillVisit.objects.filter(pump=pump).count() == 1


@pytest.mark.django_db
def test_api_refuses_a_501_character_amendment_reason(pump, nurse):
    refill = RefillVisit.objects.get(pump=pump)
    with clock("2026-01-06T09:00:00-07:00"):
        response = client_for(nurse).patch(
            url("api-refill", refill.pk), {"volume_added_ml": 38, "amend_reason": REASON_OVER}, format="json"
        )
    refused_on(response, "amend_reason")
    refill.refresh_from_db()
    assert (refill.volume_added_ml, refill.amended_at) == (D("40"), None)


@pytest.mark.django_db
def test_api_refuses_2001_character_notes_on_appointments_calls_and_patients(pump, nurse, clinic):
    with clock(NOW):
        appointment = client_for(nurse).post(
            url("api-pump-appointments", pump.pk),
            {"kind": "refill", "scheduled_for": "2026-04-22T10:30:00-07:00", "notes": NOTE_OVER},
            format="json",
        )
        event = client_for(nurse).post(
            url("api-pump-events", pump.pk),
            {"kind": "other", "occurred_at": "2026-02-01T09:00:00-07:00", "notes": NOTE_OVER},
            format="json",
        )
        patient = client_for(nurse).post(
            url("api-patients"),
            {
                "clinic": clinic.pk,
                "mrn": "LONG-1",
                "given_name": "Ada",
                "family_name": "Wordsworth",
                "birth_date": "1980-02-29",
                "risk_notes": NOTE_OVER,
                "caregiver_contact": NOTE_OVER,
            },
            format="json",
        )
    refused_on(appointment, "notes")
    refused_on(event, "notes")
    refused_on(patient, "risk_notes")
    refused_on(patient, "caregiver_contact")
    assert not Appointment.objects.exists() and not PumpEvent.objects.exists()
    assert not Patient.objects.filter(mrn="LONG-1").exists()


# --- the forms: the error beside the field --------------------------------------------------------


@pytest.fixture
def web_pump(clinic, nurse):
    """The refill form tests' pump (tests/test_web_refill.py): filled 2026-01-05 09:00 with Lioresal."""
    return filled_pump(
        clinic, nurse, datetime(2026, 1, 5, 9, tzinfo=PHX), refill={"drug_product": drug_product("2000")}
    )


@pytest.mark.django_db
def test_refill_form_shows_the_note_error_beside_the_field_and_stores_nothing(client, web_pump, nurse):
    client.force_login(nurse)
    with time_machine.travel(datetime(2026, 4, 20, 9, 30, tzinfo=PHX), tick=False):
        response = client.post(reverse("refill-create", args=[web_pump.pk]), refill_data(notes=NOTE_OVER))
    assert response.status_code == 200
    assert "notes" in response.context["form"].errors
    text = response.content.decode()
    field = re.search(r'<textarea[^>]*name="notes"[^>]*>', text).group(0)
    assert "is-invalid" in field and 'maxlength="2000"' in field
    assert "at most 2000 characters (it has 2001)" in text
    assert RefillVisit.objects.filter(pump=web_pump).count() == 1


@pytest.mark.django_db
def test_amendment_form_refuses_a_501_character_reason(client, web_pump, nurse):
    refill = web_pump.refills.get()
    client.force_login(nurse)
    data = refill_data(
        performed_at="2026-01-05T09:00", aspirated_ml="0", volume_added_ml="38", amend_reason=REASON_OVER
    )
    with time_machine.travel(datetime(2026, 1, 6, 9, tzinfo=PHX), tick=False):
        response = client.post(reverse("refill-amend", args=[refill.pk]), data)
    assert response.status_code == 200
    assert "amend_reason" in response.context["form"].errors
    refill.refresh_from_db()
    assert (refill.volume_added_ml, refill.amended_at) == (D("40"), None)


# --- the services and the model ---------------------------------------------------------------------


@pytest.mark.django_db
def test_services_refuse_notes_over_2000_and_reasons_over_500(pump, nurse, physician, clinic):
    now = datetime(2026, 2, 1, 10, tzinfo=PHX)
    refill = RefillVisit.objects.get(pump=pump)
    refusals = {}
    for name, write in {
        "refill notes": lambda: services.record_refill(
            pump=pump,
            actor=physician,
            performed_at=datetime(2026, 2, 1, 9, tzinfo=PHX),
            aspirated_ml=D("31.90"),
            volume_added_ml=D("40"),
            concentration_mcg_per_ml=D("2000"),
            daily_dose_mcg=D("600"),
            notes=NOTE_OVER,
            now=now,
        ),
        "amend reason": lambda: services.amend_refill(refill=refill, actor=nurse, amend_reason=REASON_OVER, now=now),
        "amended notes": lambda: services.amend_refill(
            refill=refill, actor=nurse, amend_reason="Typo", notes=NOTE_OVER, now=now
        ),
        "appointment notes": lambda: services.schedule_appointment(
            pump=pump,
            actor=nurse,
            kind="refill",
            scheduled_for=datetime(2026, 4, 22, 10, tzinfo=PHX),
            notes=NOTE_OVER,
            now=now,
        ),
        "call notes": lambda: services.record_pump_event(
            pump=pump, actor=nurse, kind="other", occurred_at=now, notes=NOTE_OVER, now=now
        ),
        "explant notes": lambda: services.explant_pump(
            pump=pump, actor=nurse, explanted_on=now.date(), reason="infection", notes=NOTE_OVER, now=now
        ),
    }.items():
        with pytest.raises(services.Refusal) as refusal:
            write()
        refusals[name] = sorted(refusal.value.message_dict)
    assert refusals == {
        "refill notes": ["notes"],
        "amend reason": ["amend_reason"],
        "amended notes": ["notes"],
        "appointment notes": ["notes"],
        "call notes": ["notes"],
        "explant notes": ["notes"],
    }
    assert RefillVisit.objects.filter(pump=pump).count() == 1
    assert not Appointment.objects.exists() and not PumpEvent.objects.exists()


@pytest.mark.django_db
def test_an_alert_resolution_too_long_to_keep_is_refused_not_cut_short(pump, physician):
    alert = Alert.objects.create(
        clinic=pump.patient.clinic,
        pump=pump,
        kind="pump_alarm",
        severity=40,
        dedupe_key=f"long-{pump.pk}",
        raised_at=timezone.now(),
    )
    with pytest.raises(ValidationError) as refusal:
        alert_services.resolve_alert(alert=alert, actor=physician, reason="x" * 256)
    assert "reason" in refusal.value.message_dict
    alert.refresh_from_db()
    assert alert.is_open


@pytest.mark.django_db
def test_a_note_stored_before_the_limits_is_kept_whole_and_the_refill_can_still_be_amended(pump, nurse):
    refill = RefillVisit.objects.get(pump=pump)
    RefillVisit.objects.filter(pk=refill.pk).update(notes="o" * 5000)  # as an older version stored it
    with clock("2026-01-06T09:00:00-07:00"):
        services.amend_refill(refill=refill, actor=nurse, amend_reason="Typed 40 for 38", volume_added_ml=D("38"))
    refill.refresh_from_db()
    assert (refill.volume_added_ml, len(refill.notes)) == (D("38"), 5000)
    # The model itself holds the limit (the Django admin and any full_clean).
    refill.notes = NOTE_OVER
    with pytest.raises(ValidationError) as refusal:
        refill.clean_fields()
    assert list(refusal.value.message_dict) == ["notes"]
