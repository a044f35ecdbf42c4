"""The REST API v1 (DESIGN.md "API contract (v1)"): tokens, clinics, staff, the pump catalogue,
patients and pumps; clinic scoping (404 in the URL, 400 in a body) and the role table (403)."""

from datetime import date, timedelta
from decimal import Decimal as D

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from clinics.models import AccessLog, Clinic, Membership, Role
from patients.models import Patient, Pump, PumpModel, PumpProjection

from .factories import PASSWORD, PatientFactory, PumpFactory, UserFactory, clinic_physician, member, pump_model
from .test_api_helpers import (
    client_for,
    clock,
    fill_worked_example,
    first_fill,
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


@pytest.fixture
def fresh_throttle():
    # DRF throttles count in the default cache: start each test with no history.
    cache.clear()
    yield
    cache.clear()


User = get_user_model()


def token_for(username, password=PASSWORD):
    return APIClient().post(url("api-token"), {"username": username, "password": password}, format="json")


# --- tokens --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_nurse_exchanges_password_for_a_token_and_reads_with_it(nurse, clinic, fresh_throttle):
    response = token_for("nurse")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"token", "expiry"}
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {body['token']}")
    clinics = client.get(url("api-clinics"))
    assert clinics.status_code == 200
    assert [c["name"] for c in clinics.json()] == [clinic.name]


@pytest.mark.django_db
def test_tokens_are_stored_hashed(nurse, fresh_throttle):
    token = token_for("nurse").json()["token"]
    stored = AuthToken.objects.get(user=nurse)
    assert token not in (stored.digest, stored.token_key)


@pytest.mark.django_db
def test_expired_token_is_refused(nurse, fresh_throttle):
    token = token_for("nurse").json()["token"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    with clock((timezone.now() + timedelta(hours=11)).isoformat()):
        assert client.get(url("api-clinics")).status_code == 401


@pytest.mark.django_db
def test_wrong_password_gets_no_token(nurse, fresh_throttle):
    response = token_for("nurse", "not-the-password")
    assert response.status_code == 400
    assert not AuthToken.objects.exists()


@pytest.mark.django_db
def test_token_endpoint_is_throttled(nurse, fresh_throttle):
    rates = {"DEFAULT_THROTTLE_RATES": {"token": "2/min"}}
    with override_settings(REST_FRAMEWORK={**_rest_settings(), **rates}):
        assert token_for("nurse").status_code == 200
        assert token_for("nurse").status_code == 200
        assert token_for("nurse").status_code == 429


def _rest_settings():
    from django.conf import settings

    return settings.REST_FRAMEWORK


@pytest.mark.django_db
def test_repeated_wrong_passwords_lock_the_account_out(nurse, fresh_throttle):
    for _ in range(5):
        token_for("nurse", "wrong-password-guess")
    locked = token_for("nurse")
    assert locked.status_code == 429
    assert not AuthToken.objects.exists()


@pytest.mark.django_db
def test_logged_in_session_reads_but_writes_only_with_its_csrf_token(nurse, clinic):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(nurse)
    assert client.get(url("api-clinics")).status_code == 200
    body = {"clinic": clinic.pk, "mrn": "M1", "given_name": "A", "family_name": "B", "birth_date": "1970-01-01"}
    assert client.post(url("api-patients"), body, format="json").status_code == 403
    assert not Patient.objects.exists()


@pytest.mark.django_db
def test_requests_without_credentials_are_refused(clinic):
    assert APIClient().get(url("api-clinics")).status_code == 401


# --- clinics -------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_member_lists_only_own_clinics(nurse, clinic, other_clinic):
    clinics = client_for(nurse).get(url("api-clinics")).json()
    assert clinics == [
        {
            "id": clinic.pk,
            "name": clinic.name,
            "timezone": "America/Phoenix",
            "refill_margin_days": 7,
            "overinfusion_allowance_pct": 5,
            "reminder_days": 14,
            "dose_change_limit_pct": 20,
        }
    ]


@pytest.mark.django_db
def test_superuser_creates_a_clinic_with_default_settings(superuser):
    response = client_for(superuser).post(
        url("api-clinics"), {"name": "Mesa Pump Clinic", "timezone": "America/Denver"}, format="json"
    )
    assert response.status_code == 201
    created = response.json()
    assert created["refill_margin_days"] == 7
    assert created["dose_change_limit_pct"] == 20
    clinic = Clinic.objects.get(pk=created["id"])
    assert clinic.history.get().history_user == superuser


@pytest.mark.django_db
def test_clinic_with_unknown_time_zone_is_refused(superuser):
    response = client_for(superuser).post(url("api-clinics"), {"name": "X", "timezone": "Mars/Olympus"}, format="json")
    assert response.status_code == 400
    assert "timezone" in response.json()


@pytest.mark.django_db
def test_clinic_in_the_servers_local_zone_is_refused(superuser):
    response = client_for(superuser).post(url("api-clinics"), {"name": "X", "timezone": "localtime"}, format="json")
    assert response.status_code == 400
    assert "timezone" in response.json()


@pytest.mark.django_db
def test_clinic_admin_cannot_create_a_clinic(clinic_admin):
    response = client_for(clinic_admin).post(url("api-clinics"), {"name": "Mine now"}, format="json")
    assert response.status_code == 403
    assert not Clinic.objects.filter(name="Mine now").exists()


# --- pump-model catalogue ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_catalogue_lists_the_seeded_pump_models(nurse):
    models = client_for(nurse).get(url("api-pump-models")).json()
    synchromed = next(m for m in models if m["name"] == "SynchroMed II 40 mL")
    assert synchromed == {
        "id": synchromed["id"],
        "manufacturer": "Medtronic",
        "name": "SynchroMed II 40 mL",
        "reservoir_ml": 40,
        "default_lra_ml": 2,
    }


@pytest.mark.django_db
def test_superuser_adds_a_pump_model(superuser):
    body = {"manufacturer": "Acme", "name": "Pump 25 mL", "reservoir_ml": 25, "default_lra_ml": 3}
    response = client_for(superuser).post(url("api-pump-models"), body, format="json")
    assert response.status_code == 201
    assert response.json()["reservoir_ml"] == 25
    assert PumpModel.objects.get(name="Pump 25 mL").history.get().history_user == superuser


@pytest.mark.django_db
def test_pump_model_alarm_threshold_must_be_below_its_reservoir(superuser):
    body = {"manufacturer": "Acme", "name": "Odd", "reservoir_ml": 5, "default_lra_ml": 5}
    response = client_for(superuser).post(url("api-pump-models"), body, format="json")
    assert response.status_code == 400
    assert "default_lra_ml" in response.json()


@pytest.mark.django_db
def test_nurse_cannot_add_a_pump_model(nurse):
    body = {"manufacturer": "Acme", "name": "Pump 25 mL", "reservoir_ml": 25}
    assert client_for(nurse).post(url("api-pump-models"), body, format="json").status_code == 403


# --- staff --------------------------------------------------------------------------------------------------


def staff_body(clinic, **overrides):
    body = {
        "username": "newnurse",
        "password": "a-long-unusual-passphrase",
        "email": "newnurse@clinic.example",
        "clinic": clinic.pk,
        "role": "nurse",
    }
    return {**body, **overrides}


@pytest.mark.django_db
def test_clinic_admin_adds_a_nurse_to_own_clinic(clinic_admin, clinic):
    response = client_for(clinic_admin).post(url("api-staff"), staff_body(clinic), format="json")
    assert response.status_code == 201, response.json()
    user = User.objects.get(username="newnurse")
    assert response.json() == {
        "id": user.pk,
        "username": "newnurse",
        "email": "newnurse@clinic.example",
        "clinic": clinic.pk,
        "role": "nurse",
    }
    assert user.check_password("a-long-unusual-passphrase")
    membership = Membership.objects.get(user=user)
    assert (membership.clinic, membership.role) == (clinic, Role.NURSE)
    assert membership.history.get().history_user == clinic_admin


@pytest.mark.django_db
def test_superuser_adds_staff_to_any_clinic(superuser, other_clinic):
    response = client_for(superuser).post(url("api-staff"), staff_body(other_clinic), format="json")
    assert response.status_code == 201


@pytest.mark.django_db
def test_existing_username_is_refused(clinic_admin, clinic, nurse):
    response = client_for(clinic_admin).post(url("api-staff"), staff_body(clinic, username="NURSE"), format="json")
    assert response.status_code == 400
    assert "username" in response.json()


@pytest.mark.django_db
@pytest.mark.parametrize("password", ["short", "password123456", "12345678901234", "newnurse-x"])
def test_weak_password_is_refused(clinic_admin, clinic, password):
    response = client_for(clinic_admin).post(url("api-staff"), staff_body(clinic, password=password), format="json")
    assert response.status_code == 400
    assert "password" in response.json()
    assert not User.objects.filter(username="newnurse").exists()


@pytest.mark.django_db
def test_clinic_admin_cannot_add_staff_to_another_clinic(clinic_admin, other_clinic):
    response = client_for(clinic_admin).post(url("api-staff"), staff_body(other_clinic), format="json")
    assert response.status_code == 400
    assert "clinic" in response.json()


@pytest.mark.django_db
def test_nurse_cannot_add_staff(nurse, clinic):
    response = client_for(nurse).post(url("api-staff"), staff_body(clinic), format="json")
    assert response.status_code == 403
    assert not User.objects.filter(username="newnurse").exists()


# --- patients ----------------------------------------------------------------------------------------------------

PATIENT = {"mrn": "MRN-0042", "given_name": "Alex", "family_name": "Rivera", "birth_date": "1980-02-29"}


@pytest.mark.django_db
def test_nurse_registers_a_patient(nurse, clinic):
    response = client_for(nurse).post(url("api-patients"), {**PATIENT, "clinic": clinic.pk}, format="json")
    assert response.status_code == 201
    patient = Patient.objects.get(mrn="MRN-0042")
    assert response.json().items() >= {"id": patient.pk, "clinic": clinic.pk, **PATIENT}.items()
    assert (response.json()["status"], response.json()["sci_at_or_above_t6"]) == ("active", False)
    assert patient.history.get().history_user == nurse


@pytest.mark.django_db
def test_duplicate_mrn_in_the_clinic_is_refused(nurse, clinic):
    PatientFactory(clinic=clinic, mrn="MRN-0042")
    response = client_for(nurse).post(url("api-patients"), {**PATIENT, "clinic": clinic.pk}, format="json")
    assert response.status_code == 400
    assert "mrn" in response.json()


@pytest.mark.django_db
def test_birth_date_in_the_future_is_refused(nurse, clinic):
    body = {**PATIENT, "clinic": clinic.pk, "birth_date": "2199-01-01"}
    response = client_for(nurse).post(url("api-patients"), body, format="json")
    assert response.status_code == 400
    assert "birth_date" in response.json()


@pytest.mark.django_db
def test_patient_in_another_clinic_cannot_be_registered(nurse, other_clinic):
    response = client_for(nurse).post(url("api-patients"), {**PATIENT, "clinic": other_clinic.pk}, format="json")
    assert response.status_code == 400
    assert "clinic" in response.json()
    assert not Patient.objects.exists()


@pytest.mark.django_db
def test_clinic_admin_registers_a_patient(clinic_admin, clinic):
    # DESIGN.md's role table: register and edit patients — clinic admins too (never pumps).
    response = client_for(clinic_admin).post(url("api-patients"), {**PATIENT, "clinic": clinic.pk}, format="json")
    assert response.status_code == 201


@pytest.mark.django_db
def test_patient_list_shows_own_clinics_patients_only(nurse, clinic, other_clinic):
    mine = PatientFactory(clinic=clinic)
    PatientFactory(clinic=other_clinic)
    assert [p["id"] for p in client_for(nurse).get(url("api-patients")).json()] == [mine.pk]


@pytest.mark.django_db
def test_reading_a_patient_writes_the_access_log(clinic_admin, clinic):
    patient = PatientFactory(clinic=clinic)
    response = client_for(clinic_admin).get(url("api-patient", patient.pk))
    assert response.status_code == 200
    log = AccessLog.objects.get()
    assert (log.user, log.action, log.object_id, log.clinic_id) == (clinic_admin, "api", patient.pk, clinic.pk)


@pytest.mark.django_db
def test_another_clinics_patient_is_not_found_and_not_logged(nurse, other_clinic):
    patient = PatientFactory(clinic=other_clinic)
    assert client_for(nurse).get(url("api-patient", patient.pk)).status_code == 404
    assert not AccessLog.objects.exists()


@pytest.mark.django_db
def test_user_without_membership_sees_nothing(clinic):
    loner = UserFactory()
    patient = PatientFactory(clinic=clinic)
    client = client_for(loner)
    assert client.get(url("api-patients")).json() == []
    assert client.get(url("api-patient", patient.pk)).status_code == 404


# --- pumps --------------------------------------------------------------------------------------------------------


def pump_body(patient, **overrides):
    body = {
        "patient": patient.pk,
        "pump_model": pump_model("SynchroMed II 20 mL").pk,
        "serial_number": "NGP123456",
        "implanted_on": "2025-11-03",
    }
    return {**body, **overrides}


@pytest.mark.django_db
def test_nurse_registers_a_pump_whose_alarm_threshold_defaults_to_the_models(nurse, clinic):
    patient = PatientFactory(clinic=clinic)
    response = client_for(nurse).post(url("api-pumps"), pump_body(patient, assigned_nurse=nurse.pk), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["lra_ml"] == 2
    assert body["assigned_nurse"] == nurse.pk
    assert body["projection"] is None
    assert body["explanted_on"] is None
    assert Pump.objects.get(pk=body["id"]).history.get().history_user == nurse


@pytest.mark.django_db
def test_pump_for_another_clinics_patient_is_refused_on_patient(nurse, other_clinic):
    patient = PatientFactory(clinic=other_clinic)
    response = client_for(nurse).post(url("api-pumps"), pump_body(patient), format="json")
    assert response.status_code == 400
    assert "patient" in response.json()
    assert not Pump.objects.exists()


@pytest.mark.django_db
def test_nurse_of_another_clinic_cannot_be_assigned(nurse, clinic, other_clinic):
    stranger = member(other_clinic, Role.NURSE)
    body = pump_body(PatientFactory(clinic=clinic), assigned_nurse=stranger.pk)
    response = client_for(nurse).post(url("api-pumps"), body, format="json")
    assert response.status_code == 400
    assert "assigned_nurse" in response.json()


@pytest.mark.django_db
def test_pump_alarm_threshold_above_reservoir_is_refused(nurse, clinic):
    body = pump_body(PatientFactory(clinic=clinic), lra_ml=20)
    response = client_for(nurse).post(url("api-pumps"), body, format="json")
    assert response.status_code == 400
    assert "lra_ml" in response.json()


@pytest.mark.django_db
def test_negative_alarm_threshold_is_refused(nurse, pump):
    response = client_for(nurse).patch(url("api-pump", pump.pk), {"lra_ml": -1}, format="json")
    assert response.status_code == 400
    assert "lra_ml" in response.json()


@pytest.mark.django_db
def test_duplicate_serial_number_is_refused(nurse, clinic, pump):
    body = pump_body(PatientFactory(clinic=clinic), pump_model=pump.pump_model_id, serial_number=pump.serial_number)
    response = client_for(nurse).post(url("api-pumps"), body, format="json")
    assert response.status_code == 400
    assert "serial_number" in response.json()


@pytest.mark.django_db
def test_clinic_admin_cannot_register_a_pump(clinic_admin, clinic):
    response = client_for(clinic_admin).post(url("api-pumps"), pump_body(PatientFactory(clinic=clinic)), format="json")
    assert response.status_code == 403


@pytest.mark.django_db
def test_pump_shows_its_projection(filled_pump, nurse):
    with clock("2026-01-06T09:00:00-07:00"):
        body = client_for(nurse).get(url("api-pump", filled_pump.pk)).json()
    assert body["id"] == filled_pump.pk
    assert body["projection"]["refill_due_on"] == "2026-04-29"
    assert body["projection"]["lra_at"] == "2026-05-12T01:00:00-07:00"
    assert body["projection"]["reservoir_ml"] == 39.7


@pytest.mark.django_db
def test_nurse_raises_the_alarm_threshold_and_the_due_date_moves_earlier(filled_pump, nurse):
    due_before = PumpProjection.objects.get(pump=filled_pump).refill_due_on
    with clock("2026-01-06T09:00:00-07:00"):
        response = client_for(nurse).patch(url("api-pump", filled_pump.pk), {"lra_ml": 4}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["lra_ml"] == 4
    assert date.fromisoformat(response.json()["projection"]["refill_due_on"]) < due_before


@pytest.mark.django_db
def test_explanted_pump_has_no_projection(filled_pump, nurse):
    with clock("2026-01-06T09:00:00-07:00"):
        response = client_for(nurse).patch(
            url("api-pump", filled_pump.pk), {"explanted_on": "2026-01-06"}, format="json"
        )
    assert response.status_code == 200
    assert response.json()["projection"] is None
    assert Pump.objects.get(pk=filled_pump.pk).status == Pump.Status.EXPLANTED


@pytest.mark.django_db
def test_pump_read_back_can_be_patched_unchanged(pump, nurse):
    client = client_for(nurse)
    current = client.get(url("api-pump", pump.pk)).json()
    response = client.patch(url("api-pump", pump.pk), {**current, "eri_on": "2031-05-01"}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["eri_on"] == "2031-05-01"


@pytest.mark.django_db
def test_pump_cannot_be_moved_to_another_patient(pump, nurse, clinic):
    other = PatientFactory(clinic=clinic)
    response = client_for(nurse).patch(url("api-pump", pump.pk), {"patient": other.pk}, format="json")
    assert response.status_code == 400
    assert "patient" in response.json()


@pytest.mark.django_db
def test_clinic_admin_cannot_change_a_pump(pump, clinic_admin):
    assert client_for(clinic_admin).patch(url("api-pump", pump.pk), {"lra_ml": 4}, format="json").status_code == 403


@pytest.mark.django_db
def test_another_clinics_pump_is_not_found(other_pump, nurse):
    client = client_for(nurse)
    assert client.get(url("api-pump", other_pump.pk)).status_code == 404
    assert client.patch(url("api-pump", other_pump.pk), {"lra_ml": 4}, format="json").status_code == 404
    assert client.get(url("api-pump-projection", other_pump.pk)).status_code == 404


@pytest.mark.django_db
def test_pump_list_shows_own_clinics_pumps_in_their_zone(filled_pump, nurse, other_pump):
    with clock("2026-01-06T09:00:00-07:00"):
        pumps = client_for(nurse).get(url("api-pumps")).json()
    assert [p["id"] for p in pumps] == [filled_pump.pk]
    assert pumps[0]["projection"]["empty_at"] == "2026-05-18T17:00:00-07:00"


@pytest.mark.django_db
def test_superuser_sees_every_clinics_pumps(filled_pump, other_pump, superuser):
    assert {p["id"] for p in client_for(superuser).get(url("api-pumps")).json()} == {filled_pump.pk, other_pump.pk}


# --- a constant number of queries ---------------------------------------------------------------------------------------


def _add_pumps(clinic, count, projection_template):
    start = Patient.objects.count()
    patients = Patient.objects.bulk_create(
        Patient(clinic=clinic, mrn=f"BULK{n}", given_name="Test", family_name=f"Bulk{n:05d}", birth_date="1970-01-01")
        for n in range(start, start + count)
    )
    model = pump_model()
    pumps = Pump.objects.bulk_create(
        Pump(patient=p, pump_model=model, serial_number=f"BULK-{p.pk}", implanted_on="2025-06-01", lra_ml=D("2"))
        for p in patients
    )
    fields = {f.attname: getattr(projection_template, f.attname) for f in PumpProjection._meta.concrete_fields}
    PumpProjection.objects.bulk_create(PumpProjection(**{**fields, "pump_id": pump.pk}) for pump in pumps)


def _queries(callable_):
    with CaptureQueriesContext(connection) as captured:
        response = callable_()
    assert response.status_code in (200, 201), response.content
    return len(captured)


@pytest.mark.django_db
def test_refill_and_pump_list_queries_do_not_grow_with_the_number_of_pumps(filled_pump, nurse, clinic):
    template = PumpProjection.objects.get(pump=filled_pump)
    client = client_for(nurse)
    body = first_fill(ordered_by=clinic_physician(clinic).pk)  # a nurse's first fill names the physician

    def refill_a_new_pump():
        pump = PumpFactory(patient=PatientFactory(clinic=clinic))
        with clock("2026-01-05T09:30:00-07:00"):
            return _queries(lambda: client.post(url("api-pump-refills", pump.pk), body, format="json"))

    def list_pumps():
        with clock("2026-01-06T09:00:00-07:00"):
            return _queries(lambda: client.get(url("api-pumps")))

    _add_pumps(clinic, 8, template)
    small = (refill_a_new_pump(), list_pumps())
    _add_pumps(clinic, 990, template)
    assert Pump.objects.count() >= 1000
    large = (refill_a_new_pump(), list_pumps())
    assert large == small
