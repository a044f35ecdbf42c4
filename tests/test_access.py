"""Clinic isolation and the role table (DESIGN.md "Who may do what")."""

import pytest
from django.urls import reverse

from clinics.models import AccessLog, Role

from .factories import PatientFactory, PumpFactory, member


@pytest.mark.django_db
def test_nurse_sees_own_clinic_patients_only(client, clinic, other_clinic, nurse):
    mine = PumpFactory(patient=PatientFactory(clinic=clinic, family_name="Ownclinic"))
    PumpFactory(patient=PatientFactory(clinic=other_clinic, family_name="Elsewhere"))
    client.force_login(nurse)
    response = client.get(reverse("home"))
    assert response.status_code == 200
    assert b"Ownclinic" in response.content
    assert b"Elsewhere" not in response.content
    assert mine.serial_number.encode() in response.content


@pytest.mark.django_db
def test_member_of_clinic_a_gets_404_on_clinic_b_patient(client, clinic, other_clinic, nurse):
    theirs = PatientFactory(clinic=other_clinic)
    client.force_login(nurse)
    assert client.get(reverse("patient-detail", args=[theirs.pk])).status_code == 404


@pytest.mark.django_db
def test_reading_a_patient_record_writes_the_access_log(client, clinic, nurse):
    patient = PatientFactory(clinic=clinic)
    client.force_login(nurse)
    assert client.get(reverse("patient-detail", args=[patient.pk])).status_code == 200
    log = AccessLog.objects.get()
    assert (log.user, log.action, log.object_id, log.clinic_id) == (nurse, "view", patient.pk, clinic.pk)


@pytest.mark.django_db
def test_access_log_refuses_edits_and_deletes(clinic, nurse):
    patient = PatientFactory(clinic=clinic)
    from clinics.access import log_access

    entry = log_access(nurse, AccessLog.Action.VIEW, patient)
    with pytest.raises(PermissionError):
        entry.save()
    with pytest.raises(PermissionError):
        entry.delete()
    with pytest.raises(PermissionError):
        AccessLog.objects.all().delete()


@pytest.mark.django_db
def test_every_page_requires_login(client):
    response = client.get(reverse("home"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.django_db
def test_django_admin_is_for_superusers_only(client, clinic, superuser):
    admin_user = member(clinic, Role.CLINIC_ADMIN, is_staff=True)
    client.force_login(admin_user)
    assert client.get("/admin/").status_code == 302
    client.force_login(superuser)
    assert client.get("/admin/").status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        (Role.NURSE, {"patients.view_record", "patients.record_care", "patients.change_program", "alerts.acknowledge"}),
        (
            Role.PHYSICIAN,
            {
                "patients.view_record",
                "patients.record_care",
                "patients.change_program",
                "patients.review_clinical",
                "alerts.acknowledge",
            },
        ),
        (Role.CLINIC_ADMIN, {"patients.view_record", "alerts.acknowledge", "clinics.manage_clinic", "clinics.audit"}),
    ],
)
def test_role_table(clinic, other_clinic, role, allowed):
    user = member(clinic, role)
    own = PumpFactory(patient=PatientFactory(clinic=clinic))
    foreign = PumpFactory(patient=PatientFactory(clinic=other_clinic))
    perms = {
        "patients.view_record",
        "patients.record_care",
        "patients.change_program",
        "patients.review_clinical",
        "alerts.acknowledge",
        "clinics.manage_clinic",
        "clinics.audit",
    }
    assert {p for p in perms if user.has_perm(p, own)} == allowed
    assert {p for p in perms if user.has_perm(p, foreign)} == set()


@pytest.mark.django_db
def test_superuser_may_do_everything_everywhere(superuser, other_clinic):
    pump = PumpFactory(patient=PatientFactory(clinic=other_clinic))
    assert superuser.has_perm("patients.record_care", pump)
    assert superuser.has_perm("clinics.audit", other_clinic)


@pytest.mark.django_db
def test_deactivated_membership_loses_access(client, clinic, nurse):
    patient = PatientFactory(clinic=clinic)
    nurse.memberships.update(is_active=False)
    client.force_login(nurse)
    assert client.get(reverse("patient-detail", args=[patient.pk])).status_code == 404
