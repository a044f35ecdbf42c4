"""Appointments and pump events through the API: booking with warnings, status changes, alarms
and patient calls."""

import pytest

from clinics.models import Role
from patients.models import Appointment, PumpEvent

from .factories import member
from .test_api_helpers import (
    client_for,
    clock,
    fill_worked_example,
    make_pump,
    url,
)


@pytest.fixture
def pump(clinic):
    return make_pump(clinic)


@pytest.fixture
def filled_pump(pump, nurse):
    return fill_worked_example(pump, nurse)


@pytest.fixture
def other_pump(other_clinic):
    return make_pump(other_clinic)


NOW = "2026-02-01T10:00:00-07:00"


def book(user, pump, body, now=NOW):
    with clock(now):
        return client_for(user).post(url("api-pump-appointments", pump.pk), body, format="json")


def change_status(user, appointment_id, transition, now=NOW):
    with clock(now):
        return client_for(user).post(url(f"api-appointment-{transition}", appointment_id), format="json")


def report(user, pump, body, now=NOW):
    with clock(now):
        return client_for(user).post(url("api-pump-events", pump.pk), body, format="json")


# --- appointments ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_nurse_books_the_next_refill_before_the_due_date(filled_pump, nurse):
    body = {"kind": "refill", "scheduled_for": "2026-04-22T10:30:00-07:00", "assigned_to": nurse.pk}
    response = book(nurse, filled_pump, body)
    assert response.status_code == 201, response.json()
    appointment = response.json()
    assert appointment["kind"] == "refill"
    assert appointment["status"] == "scheduled"
    assert appointment["scheduled_for"] == "2026-04-22T10:30:00-07:00"
    assert appointment["assigned_to"] == nurse.pk
    assert appointment["pump"] == filled_pump.pk
    assert appointment["warnings"] == []


@pytest.mark.django_db
def test_refill_booked_after_the_due_date_is_stored_with_a_warning(filled_pump, nurse):
    response = book(nurse, filled_pump, {"kind": "refill", "scheduled_for": "2026-05-04T10:00:00-07:00"})
    assert response.status_code == 201
    assert any("2026-04-29" in warning for warning in response.json()["warnings"])


@pytest.mark.django_db
def test_appointment_time_without_offset_is_refused(filled_pump, nurse):
    response = book(nurse, filled_pump, {"kind": "device_check", "scheduled_for": "2026-03-01T10:00:00"})
    assert response.status_code == 400
    assert "scheduled_for" in response.json()
    assert not Appointment.objects.exists()


@pytest.mark.django_db
def test_unknown_appointment_kind_is_refused(filled_pump, nurse):
    response = book(nurse, filled_pump, {"kind": "coffee", "scheduled_for": "2026-03-01T10:00:00-07:00"})
    assert response.status_code == 400
    assert "kind" in response.json()


@pytest.mark.django_db
def test_appointment_cannot_be_assigned_to_another_clinics_nurse(filled_pump, nurse, other_clinic):
    stranger = member(other_clinic, Role.NURSE)
    body = {"kind": "refill", "scheduled_for": "2026-04-22T10:30:00-07:00", "assigned_to": stranger.pk}
    response = book(nurse, filled_pump, body)
    assert response.status_code == 400
    assert "assigned_to" in response.json()
    assert not Appointment.objects.exists()


@pytest.mark.django_db
def test_clinic_admin_cannot_book_appointments(filled_pump, clinic_admin):
    response = book(clinic_admin, filled_pump, {"kind": "refill", "scheduled_for": "2026-04-22T10:30:00-07:00"})
    assert response.status_code == 403


@pytest.mark.django_db
def test_booking_for_another_clinics_pump_is_not_found(other_pump, nurse):
    response = book(nurse, other_pump, {"kind": "refill", "scheduled_for": "2026-04-22T10:30:00-07:00"})
    assert response.status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("transition", "status"), [("complete", "completed"), ("missed", "missed"), ("cancel", "cancelled")]
)
def test_appointment_is_completed_missed_or_cancelled(filled_pump, nurse, transition, status):
    appointment = book(nurse, filled_pump, {"kind": "refill", "scheduled_for": "2026-04-22T10:30:00-07:00"}).json()
    response = change_status(nurse, appointment["id"], transition, now="2026-04-22T12:00:00-07:00")
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == status
    assert response.json()["status_changed_at"] == "2026-04-22T12:00:00-07:00"


@pytest.mark.django_db
def test_closed_appointment_cannot_change_again(filled_pump, nurse):
    appointment = book(nurse, filled_pump, {"kind": "refill", "scheduled_for": "2026-04-22T10:30:00-07:00"}).json()
    assert change_status(nurse, appointment["id"], "cancel").status_code == 200
    response = change_status(nurse, appointment["id"], "complete")
    assert response.status_code == 400
    assert "status" in response.json()
    assert Appointment.objects.get().status == Appointment.Status.CANCELLED


@pytest.mark.django_db
def test_clinic_admin_cannot_change_an_appointment(filled_pump, nurse, clinic_admin):
    appointment = book(nurse, filled_pump, {"kind": "refill", "scheduled_for": "2026-04-22T10:30:00-07:00"}).json()
    assert change_status(clinic_admin, appointment["id"], "complete").status_code == 403


@pytest.mark.django_db
def test_another_clinics_appointment_is_not_found(filled_pump, nurse, other_clinic):
    appointment = book(nurse, filled_pump, {"kind": "refill", "scheduled_for": "2026-04-22T10:30:00-07:00"}).json()
    stranger = member(other_clinic, Role.NURSE)
    assert change_status(stranger, appointment["id"], "complete").status_code == 404


# --- pump events ------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_patient_call_with_withdrawal_signs_is_recorded_as_an_emergency(filled_pump, nurse):
    body = {
        "kind": "withdrawal_symptoms",
        "occurred_at": "2026-02-01T08:15:00-07:00",
        "symptoms": ["itching", "high_fever"],
        "notes": "Carer called: itching since last night.",
    }
    response = report(nurse, filled_pump, body)
    assert response.status_code == 201, response.json()
    event = response.json()
    assert event["emergency"] is True
    assert event["symptoms"] == ["itching", "high_fever"]
    assert event["source"] == "patient_call"
    assert event["occurred_at"] == "2026-02-01T08:15:00-07:00"
    assert PumpEvent.objects.get().reported_by == nurse


@pytest.mark.django_db
def test_low_reservoir_beep_heard_at_interrogation_is_not_an_emergency(filled_pump, physician):
    body = {"kind": "low_reservoir_alarm", "occurred_at": "2026-02-01T09:00:00-07:00", "source": "interrogation"}
    response = report(physician, filled_pump, body)
    assert response.status_code == 201
    assert response.json()["emergency"] is False


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"occurred_at": "2026-02-01T09:00:00"}, "occurred_at"),
        ({"occurred_at": "2026-02-01T11:00:00-07:00"}, "occurred_at"),
        ({"kind": "gremlins"}, "kind"),
        ({"symptoms": ["sneezing"]}, "symptoms"),
        ({"source": "rumour"}, "source"),
    ],
    ids=["time_without_offset", "in_the_future", "unknown_kind", "unknown_symptom", "unknown_source"],
)
def test_event_refusals_answer_400_on_the_field(filled_pump, nurse, overrides, field):
    body = {"kind": "critical_alarm", "occurred_at": "2026-02-01T09:00:00-07:00", **overrides}
    response = report(nurse, filled_pump, body)
    assert response.status_code == 400
    assert field in response.json()
    assert not PumpEvent.objects.exists()


@pytest.mark.django_db
def test_clinic_admin_cannot_record_a_pump_event(filled_pump, clinic_admin):
    response = report(clinic_admin, filled_pump, {"kind": "other", "occurred_at": "2026-02-01T09:00:00-07:00"})
    assert response.status_code == 403


@pytest.mark.django_db
def test_event_for_another_clinics_pump_is_not_found(other_pump, nurse):
    response = report(nurse, other_pump, {"kind": "other", "occurred_at": "2026-02-01T09:00:00-07:00"})
    assert response.status_code == 404
