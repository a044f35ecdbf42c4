"""The look-up every clinic administration page starts with."""

from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404

from clinics.access import scope
from clinics.models import Clinic, Role

MANAGE = "clinics.manage_clinic"
AUDIT = "clinics.audit"
HISTORY = "patients.view_history"


def clinic_for(request, clinic_id: int, perm: str) -> Clinic:
    """The clinic, if the user may ``perm`` there: outside their clinics 404, another role 403."""
    clinic = get_object_or_404(scope(Clinic.objects.all(), request.user, "pk"), pk=clinic_id)
    if not request.user.has_perm(perm, clinic):
        raise PermissionDenied("Only this clinic's administrators may use this page.")
    return clinic


def administered_clinics(user):
    """The clinics whose administration pages the user may open (every clinic for a superuser)."""
    return scope(Clinic.objects.all(), user, "pk", {Role.CLINIC_ADMIN}).order_by("name")
