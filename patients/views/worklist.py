"""The refill worklist: the home page a nurse plans the day from."""

from django.core.paginator import Paginator
from django.db.models import Count
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from clinics.models import Clinic

from ..forms import WorklistFilterForm
from ..models import Pump
from ..selectors import NEVER_FILLED, WORKLIST_STATUSES, with_status, worklist
from .common import can_record_care
from .records import describe_projection, projection_of

PAGE_SIZE = 25


def status_counts(user, now) -> dict[str, int]:
    """How many in-service pumps are in each status (one aggregate query)."""
    rows = (
        with_status(Pump.objects.for_user(user).in_service(), now)
        .order_by()
        .values("refill_status")
        .annotate(n=Count("id"))
    )
    return {row["refill_status"]: row["n"] for row in rows}


def _row(request, pump, now):
    """Decorate one worklist pump with what its row shows (no query: all of it was selected)."""
    projection = projection_of(pump)
    pump.facts = describe_projection(pump, projection, now)
    pump.facts["status"] = pump.refill_status
    pump.next_appointment_past = pump.next_appointment_at is not None and pump.next_appointment_at < now
    pump.can_record = can_record_care(request, pump)
    return pump


@require_GET
def home(request):
    now = timezone.now()
    clinics = list(Clinic.objects.for_user(request.user))
    form = WorklistFilterForm(request.GET or None, user=request.user, clinics=clinics)
    filters = form.cleaned_data if form.is_valid() else {}

    pumps = worklist(
        request.user,
        now,
        status=filters.get("status") or "",
        nurse_id=filters.get("nurse"),
        clinic_id=filters.get("clinic"),
        search=filters.get("q") or "",
    )
    page = Paginator(pumps, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = [_row(request, pump, now) for pump in page.object_list]
    counts = status_counts(request.user, now)
    context = {
        "form": form,
        "page": page,
        "rows": rows,
        "counts": [(key, label, counts.get(key, 0)) for key, label in WORKLIST_STATUSES],
        "filtered": any(filters.get(k) for k in ("q", "status", "nurse", "clinic")),
        "show_clinic": len(clinics) > 1,
        "zones": sorted({clinic.timezone for clinic in clinics}),
        "never_filled": NEVER_FILLED,
    }
    return render(request, "patients/worklist.html", context)
