"""Pages and API answers with patient data are never kept by a browser or proxy cache (issue 9, item 8)."""

import pytest
from django.urls import reverse

from .factories import filled_pump


@pytest.mark.django_db
def test_authenticated_pages_and_api_answers_are_never_stored(client, clinic, nurse):
    pump = filled_pump(clinic, nurse)
    client.force_login(nurse)
    answers = {
        "worklist": client.get(reverse("home")),
        "pump page": client.get(reverse("pump-detail", args=[pump.pk])),
        "patient page": client.get(reverse("patient-detail", args=[pump.patient.pk])),
        "one-time calendar link": client.post(reverse("calendar-issue")),
        "API patient list": client.get("/api/v1/patients/"),
        "API pump": client.get(f"/api/v1/pumps/{pump.pk}/"),
    }
    for name, response in answers.items():
        assert response.status_code == 200, name
        assert "no-store" in response.get("Cache-Control", ""), name


@pytest.mark.django_db
def test_an_api_refusal_is_not_stored_either(client):
    response = client.get("/api/v1/patients/")
    assert response.status_code in (401, 403)
    assert "no-store" in response["Cache-Control"]
