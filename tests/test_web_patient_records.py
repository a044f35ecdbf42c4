"""Registering and editing patients from the staff pages: the risk flags move the due date at
once, every refusal shows beside its field with nothing lost, a clinic admin registers patients
but sees no care action, and patients with no pump in service stay on a list of their own."""

import re
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.urls import reverse

from clinics.models import Role
from patients.models import Patient, Pump, PumpProjection

from .factories import ClinicFactory, PatientFactory, PumpFactory, filled_pump, member

PHX = ZoneInfo("America/Phoenix")
TODAY = datetime(2026, 2, 2, 10, tzinfo=PHX)


def patient_data(**overrides):
    data = {
        "mrn": "MRN-1001",
        "given_name": "Robin",
        "family_name": "Tanager",
        "birth_date": "1980-03-04",
        "phone": "+1 555 0199",
        "contact_notes": "Sam Tanager (spouse) +1 555 0198",
        "sci_at_or_above_t6": "",
        "communication_difficulty": "",
        "prior_withdrawal": "",
        "extra_margin_days": "0",
        "renal_impairment": "",
        "cns_depressants": "",
        "pregnancy_or_breastfeeding": "",
        "risk_notes": "",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v != ""}


def field_tag(text, name):
    match = re.search(rf'<(input|textarea|select)[^>]*name="{name}"[^>]*>', text)
    assert match, f"no field {name}"
    return match.group(0)


def error_beside(text, name, message):
    """The message is rendered in the field's own feedback block (crispy: error_1_id_<name>)."""
    assert "is-invalid" in field_tag(text, name), f"{name} not marked invalid"
    block = re.search(rf'id="error_1_id_{name}"[^>]*>(.*?)</', text, re.S)
    assert block, f"no error under {name}"
    assert message in block.group(1), block.group(1)


@pytest.mark.django_db
def test_nurse_registers_a_high_risk_patient_from_the_form(client, clinic, nurse):
    client.force_login(nurse)
    with time_machine.travel(TODAY, tick=False):
        response = client.post(reverse("patient-create"), patient_data(sci_at_or_above_t6="on", extra_margin_days="2"))
        detail = client.get(response["Location"])
    patient = Patient.objects.get(mrn="MRN-1001")
    assert response.status_code == 302 and response["Location"] == reverse("patient-detail", args=[patient.pk])
    assert patient.clinic == clinic and patient.sci_at_or_above_t6 and patient.extra_margin_days == 2
    assert patient.contact_notes == "Sam Tanager (spouse) +1 555 0198"
    assert patient.history.first().history_user == nurse
    assert detail.status_code == 200
    page = detail.content.decode()
    assert "Spinal cord injury at or above T6" in page and "Implant a pump" in page


@pytest.mark.django_db
def test_duplicate_mrn_and_future_birth_date_show_beside_their_fields_and_keep_the_typing(client, clinic, nurse):
    PatientFactory(clinic=clinic, mrn="MRN-1001")
    client.force_login(nurse)
    with time_machine.travel(TODAY, tick=False):
        response = client.post(
            reverse("patient-create"), patient_data(birth_date="2027-01-01", risk_notes="On opioids")
        )
    text = response.content.decode()
    assert response.status_code == 200
    error_beside(text, "mrn", "Another patient of this clinic has this MRN.")
    error_beside(text, "birth_date", "A birth date cannot be in the future.")
    assert "The patient was not saved." in text
    # Nothing typed is lost.
    assert 'value="Tanager"' in field_tag(text, "family_name")
    assert "On opioids" in text
    assert Patient.objects.filter(mrn="MRN-1001").count() == 1


@pytest.mark.django_db
def test_missing_names_and_negative_extra_days_are_refused_on_their_fields(client, clinic, nurse):
    client.force_login(nurse)
    response = client.post(reverse("patient-create"), patient_data(given_name="", extra_margin_days="-1"))
    text = response.content.decode()
    error_beside(text, "given_name", "This field is required.")
    error_beside(text, "extra_margin_days", "greater than or equal to 0")
    assert not Patient.objects.exists()


@pytest.mark.django_db
def test_same_mrn_in_another_clinic_is_allowed(client, clinic, other_clinic, nurse):
    PatientFactory(clinic=other_clinic, mrn="MRN-1001")
    client.force_login(nurse)
    response = client.post(reverse("patient-create"), patient_data())
    assert response.status_code == 302
    assert Patient.objects.get(clinic=clinic).mrn == "MRN-1001"


@pytest.mark.django_db
def test_member_of_two_clinics_chooses_the_clinic_and_cannot_pick_a_foreign_one(client, clinic, other_clinic):
    from .factories import MembershipFactory

    nurse = member(clinic, Role.NURSE, username="two-clinics")
    MembershipFactory(user=nurse, clinic=other_clinic, role=Role.NURSE)
    foreign = ClinicFactory(name="Foreign clinic")
    client.force_login(nurse)
    text = client.get(reverse("patient-create")).content.decode()
    assert "Other Test Clinic" in text and "Foreign clinic" not in text
    refused = client.post(reverse("patient-create"), patient_data(clinic=foreign.pk)).content.decode()
    error_beside(refused, "clinic", "Select a valid choice")
    response = client.post(reverse("patient-create"), patient_data(clinic=other_clinic.pk))
    assert response.status_code == 302 and Patient.objects.get().clinic == other_clinic


@pytest.mark.django_db
def test_clearing_a_risk_flag_moves_the_due_date_later_at_once(client, clinic, nurse):
    pump = filled_pump(clinic, nurse, patient={"sci_at_or_above_t6": True})
    # The worked example with the high-risk extra (7 + 3 days): 2026-05-06 − 10 = Sunday
    # 2026-04-26, a closed day: moved to Friday 2026-04-24 (CLINICAL.md "Closed days").
    assert PumpProjection.objects.get(pump=pump).refill_due_on == date(2026, 4, 24)
    patient = pump.patient
    client.force_login(nurse)
    with time_machine.travel(TODAY, tick=False):
        form = client.get(reverse("patient-edit", args=[patient.pk])).content.decode()
        assert "checked" in field_tag(form, "sci_at_or_above_t6")
        response = client.post(
            reverse("patient-edit", args=[patient.pk]),
            patient_data(
                mrn=patient.mrn,
                given_name=patient.given_name,
                family_name=patient.family_name,
                birth_date="1970-01-01",
                phone="",
                contact_notes="",
            ),
        )
    assert response.status_code == 302
    patient.refresh_from_db()
    assert not patient.sci_at_or_above_t6
    assert PumpProjection.objects.get(pump=pump).refill_due_on == date(2026, 4, 29)
    change = patient.history.order_by("-history_id").first()
    assert change.history_user == nurse and not change.sci_at_or_above_t6
    assert patient.history.filter(sci_at_or_above_t6=True).exists()  # the old value is kept


@pytest.mark.django_db
def test_edit_refuses_another_patients_mrn_beside_the_field(client, clinic, nurse):
    PatientFactory(clinic=clinic, mrn="TAKEN-1")
    patient = PatientFactory(clinic=clinic, mrn="MINE-1")
    client.force_login(nurse)
    text = client.post(
        reverse("patient-edit", args=[patient.pk]),
        patient_data(mrn="TAKEN-1", given_name="Changed"),
    ).content.decode()
    error_beside(text, "mrn", "Another patient of this clinic has this MRN.")
    assert 'value="Changed"' in field_tag(text, "given_name")
    patient.refresh_from_db()
    assert patient.mrn == "MINE-1" and patient.given_name != "Changed"


@pytest.mark.django_db
def test_clinic_admin_registers_and_edits_patients_but_sees_no_care_action(client, clinic, clinic_admin, nurse):
    client.force_login(clinic_admin)
    worklist = client.get(reverse("home")).content.decode()
    assert reverse("patient-create") in worklist
    response = client.post(reverse("patient-create"), patient_data())
    assert response.status_code == 302
    patient = Patient.objects.get(mrn="MRN-1001")
    page = client.get(reverse("patient-detail", args=[patient.pk])).content.decode()
    assert "Edit patient" in page and "Change status" in page
    assert reverse("pump-implant", args=[patient.pk]) not in page
    assert client.get(reverse("pump-implant", args=[patient.pk])).status_code == 403
    assert client.get(reverse("patient-edit", args=[patient.pk])).status_code == 200
    pump = filled_pump(clinic, nurse)
    pump_page = client.get(reverse("pump-detail", args=[pump.pk])).content.decode()
    for name in ("program-change", "pump-edit", "pump-explant", "pump-replace"):
        assert reverse(name, args=[pump.pk]) not in pump_page
        assert client.get(reverse(name, args=[pump.pk])).status_code == 403


@pytest.mark.django_db
def test_another_clinics_patient_is_not_found(client, nurse, other_clinic):
    stranger = PatientFactory(clinic=other_clinic)
    client.force_login(nurse)
    for name in ("patient-edit", "patient-status", "pump-implant"):
        assert client.get(reverse(name, args=[stranger.pk])).status_code == 404


@pytest.mark.django_db
def test_a_user_of_no_clinic_cannot_register(client):
    from .factories import UserFactory

    client.force_login(UserFactory(username="nobody"))
    assert client.get(reverse("patient-create")).status_code == 403


@pytest.mark.django_db
def test_patients_with_no_pump_in_service_have_a_list_reachable_from_the_worklist(client, clinic, nurse, other_clinic):
    explanted = PumpFactory(
        patient=PatientFactory(clinic=clinic, family_name="Explanted"),
        explanted_on=date(2026, 1, 20),
        status=Pump.Status.EXPLANTED,
    )
    PatientFactory(clinic=clinic, family_name="Registered")
    filled_pump(clinic, nurse, patient={"family_name": "Implanted"})
    PatientFactory(clinic=clinic, family_name="Transferred", status=Patient.Status.TRANSFERRED)
    PatientFactory(clinic=other_clinic, family_name="Elsewhere")
    client.force_login(nurse)
    worklist = client.get(reverse("home")).content.decode()
    link = re.search(r'<a[^>]*id="without-pump-link"[^>]*>(.*?)</a>', worklist, re.S)
    assert reverse("patients-without-pump") in link.group(0) and ">2<" in link.group(1)
    text = client.get(reverse("patients-without-pump")).content.decode()
    assert "Explanted" in text and "2026-01-20" in text
    assert "Registered" in text and "never implanted" in text
    for absent in ("Implanted,", "Transferred", "Elsewhere"):
        assert absent not in text
    assert reverse("patient-detail", args=[explanted.patient.pk]) in text
