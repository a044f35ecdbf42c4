"""Helpers shared by the staff pages: scoped look-ups, the care-staff check, safe redirects, a
patient's page with its access-log row."""

from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, render
from django.utils.http import url_has_allowed_host_and_scheme

from clinics.access import log_access
from clinics.models import AccessLog

from ..selectors import pumps_for_page

CARE_PERMISSION = "patients.record_care"


def get_pump(request, pk):
    """A pump of the user's clinics; another clinic's pump answers 404 (as if it did not exist)."""
    return get_object_or_404(pumps_for_page(request.user), pk=pk)


def require_care_staff(request, obj) -> None:
    """Recording refills, events and appointments is for nurses and physicians (DESIGN.md)."""
    if not request.user.has_perm(CARE_PERMISSION, obj):
        raise PermissionDenied("Only nurses and physicians of this clinic record care.")


def require_perm(request, perm: str, obj) -> None:
    """A page for one row of the role table (clinics/rules.py); 403 without it."""
    if not request.user.has_perm(perm, obj):
        raise PermissionDenied("Your role in this clinic does not allow this.")


def can_record_care(request, obj) -> bool:
    return request.user.has_perm(CARE_PERMISSION, obj)


def next_url(request, default: str) -> str:
    """The page to go back to (``next``), when it is one of ours."""
    candidate = request.POST.get("next") or request.GET.get("next")
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return default


def render_patient_page(request, template: str, context: dict, patient, *, detail: str, status: int = 200):
    """Render a page that shows ``patient`` (its header names them, with the MRN) and write the
    access-log row for that read — forms included: a form of a patient's record is a read of it."""
    log_access(request.user, AccessLog.Action.VIEW, patient, detail=detail)
    return render(request, template, context, status=status)
