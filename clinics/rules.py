"""Object permissions for DESIGN.md's role table ("Who may do what").

Superusers pass every check (Django's User.has_perm). For the others each predicate asks the
role the user holds in the object's clinic; with no object, whether they hold it in any clinic.
"""

import rules

from .access import clinic_id_of, roles_by_clinic
from .models import Role


def _has_role_predicate(name, roles):
    roles = frozenset(roles)

    @rules.predicate(name=name)
    def predicate(user, obj=None):
        by_clinic = roles_by_clinic(user)
        if obj is None:
            return any(role in roles for role in by_clinic.values())
        return by_clinic.get(clinic_id_of(obj)) in roles

    return predicate


is_member = _has_role_predicate("is_member", Role)
is_care_staff = _has_role_predicate("is_care_staff", {Role.NURSE, Role.PHYSICIAN})
is_physician = _has_role_predicate("is_physician", {Role.PHYSICIAN})
is_clinic_admin = _has_role_predicate("is_clinic_admin", {Role.CLINIC_ADMIN})

# read patients, pumps, visits of own clinics
rules.add_perm("patients.view_record", is_member)
# read the change history of those records (who changed what, amendments and their reasons: clinical
# information, so care staff read it as admins do); issue 9 "Also decided"
rules.add_perm("patients.view_history", is_member)
# register and edit patients: demographics, contacts, risk flags, status (clinic admins too)
rules.add_perm("patients.register_patient", is_member)
# implant, edit, explant and replace pumps (not clinic admins)
rules.add_perm("patients.manage_pump", is_care_staff)
# record refills, events, appointments; change a dose program (a nurse names the ordering physician)
rules.add_perm("patients.record_care", is_care_staff)
rules.add_perm("patients.change_program", is_care_staff)
# review discrepancies and drift alerts
rules.add_perm("patients.review_clinical", is_physician)
# countersign a nurse-entered dose order (the ordering physician or another of the clinic's)
rules.add_perm("patients.countersign_order", is_physician)
# acknowledge alerts
rules.add_perm("alerts.acknowledge", is_member)
# manage staff, clinic settings, escalation policies (in-app pages)
rules.add_perm("clinics.manage_clinic", is_clinic_admin)
# import a caseload (patients, pumps, last refill, program): recorded as that admin
rules.add_perm("clinics.import_caseload", is_clinic_admin)
# audit report, access log, CSV export, and the history of the clinic's own settings, staff,
# rotas, escalation policies and webhooks (not clinical records: those are patients.view_history)
rules.add_perm("clinics.audit", is_clinic_admin)
