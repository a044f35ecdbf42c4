"""Audit pages: the refill-visit report and its CSV export, a record's history, the access log.

All read-only: history has no "revert" (corrections go through the services, as amendments).
"""

from django.core.paginator import Paginator
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.text import slugify
from django.views.decorators.http import require_GET

from clinics.access import log_access, log_list_access
from clinics.models import AccessLog
from patients.models import CaseloadImport

from .. import audit
from ..forms import AccessLogFilterForm, RefillAuditFilterForm
from .common import AUDIT, HISTORY, clinic_for

PAGE_SIZE = 50


def _query_without(request, *names) -> str:
    query = request.GET.copy()
    for name in names:
        query.pop(name, None)
    return query.urlencode()


@require_GET
def refill_report(request, clinic_id):
    """Refill visits by date, nurse, pump, discrepancy; ``?format=csv`` exports the same filter."""
    clinic = clinic_for(request, clinic_id, AUDIT)
    form = RefillAuditFilterForm(request.GET or None, clinic=clinic)
    valid = not form.is_bound or form.is_valid()
    filters = form.filters
    visits = audit.refill_visits(clinic, **filters) if valid else audit.refill_visits(clinic).none()

    if request.GET.get("format") == "csv" and valid:
        rows = visits.count()
        audit.log_export(request.user, clinic, filters, rows)
        today = timezone.now().astimezone(clinic.zone).date()
        response = StreamingHttpResponse(
            audit.refill_csv_lines(visits, clinic.zone), content_type="text/csv; charset=utf-8"
        )
        filename = f"refill-visits-{slugify(clinic.name)}-{today:%Y-%m-%d}.csv"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        response["Cache-Control"] = "no-store"
        return response

    page = Paginator(visits, PAGE_SIZE).get_page(request.GET.get("page"))
    if page.object_list:
        log_list_access(
            request.user,
            AccessLog.Action.VIEW,
            [clinic.pk],
            detail=f"refill audit page {page.number}: {len(page.object_list)} visit(s)",
        )
    query = _query_without(request, "page", "format")
    context = {
        "clinic": clinic,
        "section": "audit",
        "form": form,
        "page": page,
        "filtered": bool(filters),
        "filter_description": audit.describe_refill_filter(filters),
        "export_query": f"{query}&format=csv" if query else "format=csv",
        "caseload_imports": CaseloadImport.objects.filter(clinic=clinic).select_related("imported_by")[:20],
    }
    return render(request, "clinics/audit.html", context, status=200 if valid else 400)


def _patient_of(kind_key, obj):
    if kind_key == "patient":
        return obj
    if kind_key == "pump":
        return obj.patient
    return obj.pump.patient


@require_GET
def record_history(request, clinic_id, kind, pk):
    """Who changed what, when, for one record of this clinic (read-only). A patient's records
    (patient, pump, refill, program, appointment, event): every member who may read them, care
    staff included; the clinic's own settings, staff, rotas, policies and webhooks: its admins."""
    history_kind = audit.HISTORY_KINDS.get(kind)
    if history_kind is None:
        raise Http404("No history is kept for that kind of record.")
    clinic = clinic_for(request, clinic_id, HISTORY if kind in audit.PATIENT_RECORD_KINDS else AUDIT)
    try:
        obj = audit.history_object(history_kind, clinic, pk)
    except history_kind.model.DoesNotExist:
        raise Http404("No such record in this clinic.") from None
    patient = None
    if kind in audit.PATIENT_RECORD_KINDS:
        patient = _patient_of(kind, obj)
        log_access(
            request.user, AccessLog.Action.VIEW, patient, detail=f"change history of {history_kind.title.lower()} #{pk}"
        )
    entries = audit.record_history(audit.history_sources(history_kind, obj, clinic.zone), clinic.zone)
    page = Paginator(entries, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "clinic": clinic,
        "section": "audit",
        "kind": history_kind,
        "obj": obj,
        "record": audit.describe_record(history_kind, obj, clinic.zone),
        "patient": patient,
        "page": page,
        "can_audit": request.user.has_perm(AUDIT, clinic),
    }
    return render(request, "clinics/history.html", context)


@require_GET
def access_log(request, clinic_id):
    clinic = clinic_for(request, clinic_id, AUDIT)
    form = AccessLogFilterForm(request.GET or None, clinic=clinic)
    valid = not form.is_bound or form.is_valid()
    entries = audit.access_log(clinic, **form.filters) if valid else AccessLog.objects.none()
    page = Paginator(entries, PAGE_SIZE).get_page(request.GET.get("page"))
    page.object_list = audit.with_subjects(page.object_list)
    # The log names the patients read: reading it is a read of them too (written after this page's
    # rows were selected, so the page never lists its own reading).
    if any(entry.subject_object is not None for entry in page.object_list):
        log_list_access(
            request.user,
            AccessLog.Action.VIEW,
            [clinic.pk],
            detail=f"access log page {page.number}: {len(page.object_list)} entries",
        )
    context = {
        "clinic": clinic,
        "section": "access",
        "form": form,
        "page": page,
        "filtered": bool(form.filters),
    }
    return render(request, "clinics/access_log.html", context, status=200 if valid else 400)
