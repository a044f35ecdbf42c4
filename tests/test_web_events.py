"""The patient-call quick form: the checklist, the record, and a plain emergency message."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.urls import reverse

from patients import services
from patients.models import PumpEvent

from .factories import PatientFactory, PumpFactory

PHX = ZoneInfo("America/Phoenix")
NOW = datetime(2026, 4, 1, 10, tzinfo=PHX)
EMERGENCY = (
    "Withdrawal or overdose signs: this is an emergency — send the patient to emergency care now, not a booked refill."
)


@pytest.fixture
def pump(clinic):
    return PumpFactory(patient=PatientFactory(clinic=clinic))


@pytest.mark.django_db
def test_event_form_lists_every_checklist_item_with_a_label(client, nurse, pump):
    client.force_login(nurse)
    text = client.get(reverse("pump-event", args=[pump.pk])).content.decode()
    for key, label in services.SYMPTOMS.items():
        assert f'value="{key}"' in text and label in text
    assert "Critical alarm (dual tone)" in text and "Low-reservoir alarm (single tone)" in text
    # The warning is on the page, hidden until a sign or an emergency kind is ticked (static JS).
    assert 'id="emergency-warning" role="alert" hidden' in text and EMERGENCY in text


@pytest.mark.django_db
def test_withdrawal_signs_are_recorded_and_called_an_emergency(client, nurse, pump):
    client.force_login(nurse)
    with time_machine.travel(NOW, tick=False):
        response = client.post(
            reverse("pump-event", args=[pump.pk]),
            {
                "kind": "other",
                "source": "patient_call",
                "occurred_at": "2026-04-01T09:40",
                "withdrawal_signs": ["itching", "high_fever"],
                "notes": "Carer called",
            },
        )
    assert response.status_code == 200
    text = response.content.decode()
    assert EMERGENCY in text and 'role="alert"' in text
    event = PumpEvent.objects.get()
    assert event.symptoms == ["itching", "high_fever"] and event.reported_by == nurse
    assert event.occurred_at == datetime(2026, 4, 1, 9, 40, tzinfo=PHX)


@pytest.mark.django_db
def test_overdose_signs_are_an_emergency_too(client, nurse, pump):
    client.force_login(nurse)
    with time_machine.travel(NOW, tick=False):
        response = client.post(
            reverse("pump-event", args=[pump.pk]),
            {
                "kind": "other",
                "source": "patient_call",
                "occurred_at": "2026-04-01T09:40",
                "overdose_signs": ["slow_breathing"],
            },
        )
    assert EMERGENCY in response.content.decode()


@pytest.mark.django_db
def test_a_single_tone_alarm_without_signs_is_recorded_without_emergency(client, nurse, pump):
    client.force_login(nurse)
    with time_machine.travel(NOW, tick=False):
        response = client.post(
            reverse("pump-event", args=[pump.pk]),
            {"kind": "low_reservoir_alarm", "source": "patient_call", "occurred_at": "2026-04-01T09:40"},
            follow=True,
        )
    assert response.redirect_chain[-1][0] == reverse("pump-detail", args=[pump.pk])
    text = response.content.decode()
    assert "Low-reservoir alarm (single tone) recorded." in text
    assert "emergency care now" not in text


@pytest.mark.django_db
def test_an_event_in_the_future_is_refused_on_its_field(client, nurse, pump):
    client.force_login(nurse)
    with time_machine.travel(NOW, tick=False):
        response = client.post(
            reverse("pump-event", args=[pump.pk]),
            {"kind": "other", "source": "patient_call", "occurred_at": "2026-04-02T09:40"},
        )
    assert "An event cannot be recorded in the future." in response.content.decode()
    assert not PumpEvent.objects.exists()


@pytest.mark.django_db
def test_clinic_admin_cannot_record_events(client, clinic_admin, pump):
    client.force_login(clinic_admin)
    assert client.get(reverse("pump-event", args=[pump.pk])).status_code == 403
