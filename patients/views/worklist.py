"""The refill worklist: the home page a nurse plans the day from."""

from django.core.paginator import Paginator
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from clinics.access import log_list_access
from clinics.models import AccessLog, Clinic

from ..forms import WorklistFilterForm
from ..models import Patient, Pump
from ..selectors import NEVER_FILLED, TIER_LABELS, TIERS, tier_counts, worklist
from .common import can_record_care
from .records import describe_projection, projection_of

PAGE_SIZE = 25
# The tier a refill status alone gives; a pump in another tier was lifted there by an open alert.
STATUS_TIER = {"overdue": "urgent"}
# The alerting side's labels, read from its model at run time (patients never imports alerts).
_ALERT_MODEL = Pump._meta.get_field("alerts").related_model
ALERT_KIND_LABELS = dict(_ALERT_MODEL._meta.get_field("kind").flatchoices)
ALERT_SEVERITY_LABELS = dict(_ALERT_MODEL._meta.get_field("severity").flatchoices)


def status_counts(user, now) -> dict[str, int]:
    """How many in-service pumps are in each urgency tier (one aggregate query, the worklist's tiers)."""
    return tier_counts(Pump.objects.for_user(user).in_service(), now)


def _row(request, pump, now):
    """Decorate one worklist pump with what its row shows (no query: all of it was selected)."""
    projection = projection_of(pump)
    pump.facts = describe_projection(pump, projection, now)
    pump.facts["status"] = pump.refill_status
    pump.next_appointment_past = pump.next_appointment_at is not None and pump.next_appointment_at < now
    pump.can_record = can_record_care(request, pump)
    pump.tier_label = TIER_LABELS[pump.tier]
    pump.lifted_by_alert = pump.tier != STATUS_TIER.get(pump.refill_status, pump.refill_status)
    if pump.worst_alert_id:
        pump.worst_alert_label = ALERT_KIND_LABELS.get(pump.worst_alert_kind, pump.worst_alert_kind)
        pump.worst_alert_severity_label = ALERT_SEVERITY_LABELS.get(pump.worst_alert_severity, "")
    return pump


@require_http_methods(["GET", "HEAD", "POST"])
def home(request):
    """GET lists and filters by status, nurse and clinic; a search by name or MRN is a POST, so
    the term never lands in a URL (browser history, proxy and server logs, a login ``next``)."""
    now = timezone.now()
    clinics = list(Clinic.objects.for_user(request.user))
    searching = request.method == "POST"
    data = request.POST if searching else request.GET.copy()
    if not searching:
        data.pop("q", None)
    form = WorklistFilterForm(data or None, user=request.user, clinics=clinics)
    filters = form.cleaned_data if form.is_valid() else {}

    pumps = worklist(
        request.user,
        now,
        status=filters.get("status") or "",
        nurse_id=filters.get("nurse"),
        clinic_id=filters.get("clinic"),
        search=filters.get("q") or "",
    )
    page = Paginator(pumps, PAGE_SIZE).get_page(data.get("page"))
    rows = [_row(request, pump, now) for pump in page.object_list]
    log_list_access(
        request.user,
        AccessLog.Action.VIEW,
        (pump.patient.clinic_id for pump in rows),
        detail=f"{'worklist search' if searching else 'worklist'} page {page.number}: {len(rows)} pump(s)",
    )
    counts = status_counts(request.user, now)
    context = {
        "form": form,
        "page": page,
        "rows": rows,
        "counts": [(key, label, counts.get(key, 0)) for key, label in TIERS],
        "filtered": any(filters.get(k) for k in ("q", "status", "nurse", "clinic")),
        "searching": searching,
        "show_clinic": len(clinics) > 1,
        "zones": sorted({clinic.timezone for clinic in clinics}),
        "never_filled": NEVER_FILLED,
        "without_pump": Patient.objects.for_user(request.user)
        .active()
        .exclude(pumps__status=Pump.Status.ACTIVE)
        .count(),
    }
    return render(request, "patients/worklist.html", context)
