"""The record's life through the API: patients edited (risk flags, status), pumps implanted with
their first fill, explanted and replaced; the role table's rows for them."""

from datetime import date

import pytest

from alerts.models import Alert, AlertKind
from clinics.models import AccessLog, Role
from patients.models import Patient, Pump, PumpProjection, RefillVisit

from .factories import PatientFactory, PumpFactory, clinic_physician, filled_pump, member, pump_model
from .test_api_helpers import client_for, clock, url

NOW = "2026-04-30T09:00:00-07:00"


def implant_body(**changes):
    body = {
        "pump_model": pump_model().pk,
        "serial_number": "API-NEW-1",
        "implanted_on": "2026-01-05",
        "fill": {
            "performed_at": "2026-01-05T09:00:00-07:00",
            "volume_added_ml": 40,
            "concentration_mcg_per_ml": 2000,
            "daily_dose_mcg": 150,
        },
    }
    body.update(changes)
    return body


def post(user, name, pk, body, now="2026-01-05T10:00:00-07:00"):
    with clock(now):
        return client_for(user).post(url(name, pk), body, format="json")


def patch_patient(user, patient, body, now=NOW):
    with clock(now):
        return client_for(user).patch(url("api-patient", patient.pk), body, format="json")


# --- the role table -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_clinic_admin_may_register_a_patient_but_not_implant_a_pump(clinic, clinic_admin):
    body = {
        "clinic": clinic.pk,
        "mrn": "ADM-1",
        "given_name": "Test",
        "family_name": "Person",
        "birth_date": "1970-01-01",
    }
    body["prior_withdrawal"] = True
    response = client_for(clinic_admin).post(url("api-patients"), body, format="json")
    assert response.status_code == 201, response.json()
    patient = Patient.objects.get(pk=response.json()["id"])
    assert patient.prior_withdrawal
    assert post(clinic_admin, "api-patient-implant", patient.pk, implant_body()).status_code == 403
    assert not Pump.objects.exists()


@pytest.mark.django_db
def test_clinic_admin_may_not_explant_or_edit_a_pump(clinic, clinic_admin, nurse):
    pump = filled_pump(clinic, nurse)
    body = {"explanted_on": "2026-04-30", "reason": "infection"}
    assert post(clinic_admin, "api-pump-explant", pump.pk, body, now=NOW).status_code == 403
    with clock(NOW):
        assert client_for(clinic_admin).patch(url("api-pump", pump.pk), {"lra_ml": 4}, format="json").status_code == 403
    pump.refresh_from_db()
    assert pump.status == Pump.Status.ACTIVE


@pytest.mark.django_db
def test_clinic_admin_may_edit_a_patients_risk_flags(clinic, clinic_admin, nurse):
    pump = filled_pump(clinic, nurse)
    response = patch_patient(clinic_admin, pump.patient, {"communication_difficulty": True})
    assert response.status_code == 200, response.json()
    assert PumpProjection.objects.get(pump=pump).unmoved_refill_due_on == date(2026, 4, 26)


# --- patients ------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_patch_patient_takes_every_field_and_moves_the_due_date(clinic, nurse):
    pump = filled_pump(clinic, nurse)
    body = {
        "phone": "+1 555 0199",
        "caregiver_contact": "Partner, +1 555 0198",
        "sci_at_or_above_t6": True,
        "extra_margin_days": 2,
        "risk_notes": "Lives 3 hours away",
    }
    response = patch_patient(nurse, pump.patient, body)
    assert response.status_code == 200, response.json()
    data = response.json()
    assert (data["sci_at_or_above_t6"], data["extra_margin_days"], data["caregiver_contact"]) == (
        True,
        2,
        "Partner, +1 555 0198",
    )
    # 2026-05-06 − (7 + 3 + 2) days.
    assert PumpProjection.objects.get(pump=pump).unmoved_refill_due_on == date(2026, 4, 24)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"status": "deceased"}, "status_reason"),
        ({"status": "transferred", "status_reason": "Moved"}, "transferred_to"),
        ({"status": "deceased", "status_reason": "x", "status_changed_on": "2026-05-02"}, "status_changed_on"),
        ({"status": "retired"}, "status"),
        ({"sci_at_or_above_t6": "yes"}, "sci_at_or_above_t6"),
        ({"extra_margin_days": -1}, "extra_margin_days"),
        ({"clinic": 999}, "clinic"),
        ({"nickname": "x"}, "nickname"),
    ],
)
def test_patch_patient_refusals_answer_400_on_the_field(clinic, nurse, body, field):
    pump = filled_pump(clinic, nurse)
    response = patch_patient(nurse, pump.patient, body)
    assert response.status_code == 400
    assert field in response.json(), response.json()
    pump.patient.refresh_from_db()
    assert pump.patient.status == "active"


@pytest.mark.django_db
def test_patch_patient_transfer_takes_the_pump_off_the_worklist_and_resolves_its_alert(clinic, nurse):
    from alerts import engine

    pump = filled_pump(clinic, nurse, assigned_nurse=nurse)
    with clock(NOW):
        engine.run_scan()
    body = {
        "status": "transferred",
        "status_reason": "Moved away",
        "status_changed_on": "2026-04-30",
        "transferred_to": "Receiving clinic (fictional)",
        "accepted_first_refill_on": "2026-05-02",
    }
    response = patch_patient(nurse, pump.patient, body)
    assert response.status_code == 200, response.json()
    assert (response.json()["status"], response.json()["status_changed_on"]) == ("transferred", "2026-04-30")
    assert pump not in Pump.objects.in_service()
    assert not Alert.objects.open().filter(pump=pump, kind=AlertKind.REFILL_OVERDUE).exists()


@pytest.mark.django_db
def test_patch_patient_transfer_dated_ahead_is_shown_as_pending(clinic, nurse):
    pump = filled_pump(clinic, nurse)
    body = {
        "status": "transferred",
        "status_reason": "Moving",
        "status_changed_on": "2026-05-10",
        "transferred_to": "X",
    }
    data = patch_patient(nurse, pump.patient, body).json()
    assert data["status"] == "active"
    assert data["pending_status_change"] == {
        "status": "transferred",
        "effective_on": "2026-05-10",
        "reason": "Moving",
        "transferred_to": "X",
    }


@pytest.mark.django_db
def test_another_clinics_patient_is_not_found(clinic, other_clinic, nurse):
    other = PatientFactory(clinic=other_clinic)
    assert patch_patient(nurse, other, {"phone": "1"}).status_code == 404


# --- implant, explant, replace ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_nurse_implants_a_pump_with_its_first_fill_naming_the_physician(clinic, nurse):
    patient = PatientFactory(clinic=clinic)
    body = implant_body()
    body["fill"]["ordered_by"] = clinic_physician(clinic).pk
    response = post(nurse, "api-patient-implant", patient.pk, body)
    assert response.status_code == 201, response.json()
    data = response.json()
    # 150 mcg/day outlasts the drug's 180 days: due on its expiry (2026-07-04) less the margin.
    assert (data["patient"], data["lra_ml"], data["status"]) == (patient.pk, 2.0, "active")
    assert (
        data["projection"]["refill_due_on"] == PumpProjection.objects.get(pump_id=data["id"]).refill_due_on.isoformat()
    )
    assert data["projection"]["refill_due_on"] <= "2026-06-27"
    assert RefillVisit.objects.get(pump_id=data["id"]).expected_residual_ml is None


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fill", "nested_field"),
    [
        ({}, "ordered_by"),  # a nurse's first fill names the physician
        ({"volume_added_ml": 41}, "volume_added_ml"),
        ({"daily_dose_mcg": 1440}, "dose_change_confirmed"),
        ({"performed_at": "2026-01-05T09:00:00"}, "performed_at"),
    ],
)
def test_implant_refusals_name_the_fill_field_under_fill(clinic, nurse, fill, nested_field):
    patient = PatientFactory(clinic=clinic)
    body = implant_body()
    body["fill"].update(fill)
    if nested_field != "ordered_by":
        body["fill"]["ordered_by"] = clinic_physician(clinic).pk
    response = post(nurse, "api-patient-implant", patient.pk, body)
    assert response.status_code == 400
    assert nested_field in response.json()["fill"], response.json()
    assert not Pump.objects.exists()


@pytest.mark.django_db
def test_implant_refusal_of_a_taken_serial_number_is_400_on_the_field(clinic, physician):
    filled_pump(clinic, physician, serial_number="API-NEW-1")
    response = post(physician, "api-patient-implant", PatientFactory(clinic=clinic).pk, implant_body())
    assert response.status_code == 400 and "serial_number" in response.json()


@pytest.mark.django_db
def test_superuser_named_as_ordering_physician_is_400_on_ordered_by(clinic, nurse, superuser):
    body = implant_body()
    body["fill"]["ordered_by"] = superuser.pk
    response = post(nurse, "api-patient-implant", PatientFactory(clinic=clinic).pk, body)
    assert response.status_code == 400 and "ordered_by" in response.json()["fill"]


@pytest.mark.django_db
def test_explant_through_the_api(clinic, nurse, other_clinic):
    pump = filled_pump(clinic, nurse)
    assert (
        post(nurse, "api-pump-explant", pump.pk, {"explanted_on": "2026-04-30", "reason": "bored"}, now=NOW).status_code
        == 400
    )
    assert (
        post(nurse, "api-pump-explant", pump.pk, {"explanted_on": "2026-05-01", "reason": "death"}, now=NOW).status_code
        == 400
    )
    response = post(nurse, "api-pump-explant", pump.pk, {"explanted_on": "2026-04-30", "reason": "not_needed"}, now=NOW)
    assert response.status_code == 200, response.json()
    assert (response.json()["status"], response.json()["explant_reason"], response.json()["projection"]) == (
        "explanted",
        "not_needed",
        None,
    )
    stranger = member(other_clinic, Role.NURSE, username="stranger")
    assert (
        post(
            stranger, "api-pump-explant", pump.pk, {"explanted_on": "2026-04-30", "reason": "death"}, now=NOW
        ).status_code
        == 404
    )


@pytest.mark.django_db
def test_replace_through_the_api_links_the_pumps(clinic, nurse):
    old = filled_pump(clinic, nurse)
    body = implant_body(explanted_on="2026-04-30", implanted_on="2026-04-30")
    body["fill"].update(
        performed_at="2026-04-30T08:00:00-07:00", daily_dose_mcg=600, ordered_by=clinic_physician(clinic).pk
    )
    response = post(nurse, "api-pump-replace", old.pk, body, now=NOW)
    assert response.status_code == 201, response.json()
    assert response.json()["replaces"] == old.pk
    old.refresh_from_db()
    assert (old.status, old.explant_reason) == ("explanted", "replacement")
    # 600 → 900 mcg/day against the old pump's dose needs the confirmation.
    other = filled_pump(clinic, nurse)
    body = implant_body(explanted_on="2026-04-30", implanted_on="2026-04-30", serial_number="API-NEW-2")
    body["fill"].update(
        performed_at="2026-04-30T08:00:00-07:00", daily_dose_mcg=900, ordered_by=clinic_physician(clinic).pk
    )
    response = post(nurse, "api-pump-replace", other.pk, body, now=NOW)
    assert response.status_code == 400 and "dose_change_confirmed" in response.json()["fill"]


# --- the other dose paths --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_nurse_amendment_and_program_change_without_a_physician_are_400_on_ordered_by(clinic, nurse):
    pump = filled_pump(clinic, nurse)
    refill = pump.refills.get()
    with clock(NOW):
        response = client_for(nurse).patch(
            url("api-refill", refill.pk), {"daily_dose_mcg": 650, "amend_reason": "Mistyped"}, format="json"
        )
        assert response.status_code == 400 and "ordered_by" in response.json()
        response = client_for(nurse).post(
            url("api-pump-programs", pump.pk),
            {"effective_at": "2026-02-01T09:00:00-07:00", "daily_dose_mcg": 650},
            format="json",
        )
        assert response.status_code == 400 and "ordered_by" in response.json()
        physician = clinic_physician(clinic)
        response = client_for(nurse).patch(
            url("api-refill", refill.pk),
            {"daily_dose_mcg": 650, "amend_reason": "Mistyped", "ordered_by": physician.pk},
            format="json",
        )
        assert response.status_code == 200 and response.json()["ordered_by"] == physician.pk


@pytest.mark.django_db
def test_patient_list_queries_do_not_grow_with_pending_transfers(clinic, nurse):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def list_queries():
        client = client_for(nurse)
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url("api-patients")).status_code == 200
        return len(queries)

    def add_patients(count):
        for _ in range(count):
            pump = filled_pump(clinic, nurse)
            body = {"status": "transferred", "status_reason": "Moving", "status_changed_on": "2026-05-10"}
            assert patch_patient(nurse, pump.patient, {**body, "transferred_to": "X"}).status_code == 200

    add_patients(1)
    small = list_queries()
    add_patients(3)
    assert list_queries() == small


# --- the handover summary ----------------------------------------------------------------------------------


def get_handover(user, pump, now=NOW):
    with clock(now):
        return client_for(user).get(url("api-pump-handover", pump.pk))


@pytest.mark.django_db
def test_a_nurse_transferring_a_patient_fetches_the_handover_summary_the_page_prints(clinic, nurse):
    pump = filled_pump(clinic, nurse, assigned_nurse=nurse, patient={"family_name": "Mover", "mrn": "MRN-HAND-1"})
    transfer = {
        "status": "transferred",
        "status_reason": "Moved away",
        "status_changed_on": "2026-04-30",
        "transferred_to": "Tucson Clinic",
        "accepted_first_refill_on": "2026-05-04",
    }
    assert patch_patient(nurse, pump.patient, transfer).status_code == 200

    response = get_handover(nurse, pump)

    assert response.status_code == 200, response.json()
    summary = response.json()
    assert summary["generated_at"] == NOW  # in the sending clinic's zone, with its offset
    assert summary["clinic"]["timezone"] == "America/Phoenix"
    patient = summary["patient"]
    assert (patient["mrn"], patient["family_name"], patient["status"]) == ("MRN-HAND-1", "Mover", "transferred")
    assert (patient["transferred_to"], patient["accepted_first_refill_on"]) == ("Tucson Clinic", "2026-05-04")
    assert summary["pump"]["serial_number"] == pump.serial_number
    assert summary["pump"]["assigned_nurse"] == nurse.get_full_name()
    # The worked example (CLINICAL.md): 40 mL of 2000 mcg/mL at 600 mcg/day, numbers not strings.
    assert summary["drug"]["concentration_mcg_per_ml"] == 2000
    assert summary["program"]["daily_dose_mcg"] == 600
    assert summary["last_refill"]["performed_at"] == "2026-01-05T09:00:00-07:00"
    assert summary["last_refill"]["volume_added_ml"] == 40
    assert summary["projection"]["refill_due_on"] == "2026-04-29"
    assert summary["projection"]["conservative_lra_at"] == "2026-05-06T00:14:17-07:00"
    assert summary["projection"]["status"] == "overdue"
    # The read is in the clinic admins' access log, naming the patient.
    read = AccessLog.objects.get(user=nurse, action=AccessLog.Action.API)
    assert (read.clinic_id, read.object_id, read.detail) == (
        clinic.pk,
        pump.patient.pk,
        f"handover summary {pump.reference}",
    )


@pytest.mark.django_db
def test_a_pump_never_filled_hands_over_with_no_drug_refill_or_projection(clinic, nurse):
    pump = PumpFactory(patient=PatientFactory(clinic=clinic))

    response = get_handover(nurse, pump)

    assert response.status_code == 200, response.json()
    summary = response.json()
    assert summary["pump"]["serial_number"] == pump.serial_number
    assert (summary["drug"], summary["program"], summary["last_refill"], summary["projection"]) == (None,) * 4


@pytest.mark.django_db
def test_the_handover_summary_is_for_the_clinics_staff_and_another_clinics_pump_answers_404(
    clinic, other_clinic, nurse, clinic_admin
):
    pump = filled_pump(clinic, nurse)
    assert get_handover(clinic_physician(clinic), pump).status_code == 200
    # A read, as the printable page: the role table lets the clinic's admins read its records.
    assert get_handover(clinic_admin, pump).status_code == 200
    assert AccessLog.objects.filter(user=clinic_admin, detail=f"handover summary {pump.reference}").count() == 1
    other_nurse = member(other_clinic, Role.NURSE, username="other-nurse")
    assert get_handover(other_nurse, pump).status_code == 404  # as if it did not exist
    assert get_handover(None, pump).status_code in (401, 403)
    assert not AccessLog.objects.filter(user=other_nurse).exists()
