"""Recording a refill (with its live preview), the printable patient card, and amendments."""

from decimal import Decimal

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from clinics.access import log_access, scope
from clinics.models import AccessLog

from .. import services
from ..forms import AmendRefillForm, RefillForm, add_refusal
from ..models import RefillVisit
from ..selectors import preview_refill, program_in_effect
from .common import get_pump, render_patient_page, require_care_staff
from .records import projection_of


def plain(value: Decimal) -> Decimal:
    """600.00 shown as 600, never as 6E+2 (``normalize`` alone gives exponents)."""
    return Decimal(f"{value.normalize():f}")


def _initial(pump, now) -> dict:
    """Pre-fill: the expected residual now and the program in effect (the nurse checks, not retypes)."""
    initial = {"performed_at": now, "bolus_mcg_per_day": 0}
    expected = services.expected_residual_ml(pump, now)
    initial["aspirated_ml"] = expected if expected is not None else 0
    program = program_in_effect(list(pump.programs.order_by("effective_at", "id")), now)
    if program is not None:
        initial.update(
            concentration_mcg_per_ml=plain(program.concentration_mcg_per_ml),
            daily_dose_mcg=plain(program.daily_dose_mcg),
            bolus_mcg_per_day=plain(program.bolus_mcg_per_day),
        )
    last = pump.refills.select_related("drug_product").order_by("-performed_at").first()
    if last is not None and last.drug_product is not None and last.drug_product.is_active:
        initial["drug_product"] = last.drug_product
    return initial


@require_http_methods(["GET", "POST"])
def refill_create(request, pk):
    pump = get_pump(request, pk)
    require_care_staff(request, pump)
    # The form shows whole minutes: pre-fill the residual expected at the minute it shows.
    now = timezone.now().replace(second=0, microsecond=0)
    if request.method == "POST":
        form = RefillForm(request.POST, pump=pump)
        if form.is_valid():
            try:
                refill = services.record_refill(pump=pump, actor=request.user, **form.service_kwargs())
            except services.Refusal as refusal:
                add_refusal(form, refusal)
            else:
                messages.success(request, "Refill recorded. Print the card for the patient.")
                return redirect("refill-card", pk=refill.pk)
    else:
        form = RefillForm(pump=pump, initial=_initial(pump, now))
    return render_patient_page(
        request,
        "patients/refill_form.html",
        {
            "pump": pump,
            "patient": pump.patient,
            "form": form,
            "projection": projection_of(pump),
            "expected_residual_ml": services.expected_residual_ml(pump, now),
            "preview": _preview_context(pump, form, timezone.now()) if request.method == "POST" else None,
            "empty": _empty_reservoir(pump, form),
        },
        pump.patient,
        detail=f"refill form {pump.reference}",
    )


def _empty_reservoir(pump, form):
    """Whether the refill as typed comes after a projected empty reservoir (the form says so
    before saving and asks for the withdrawal assessment); None otherwise."""
    if form.is_bound:
        form.is_valid()
        performed_at, aspirated_ml = form.cleaned_data.get("performed_at"), form.cleaned_data.get("aspirated_ml")
    else:
        performed_at, aspirated_ml = form.initial.get("performed_at"), form.initial.get("aspirated_ml")
    if performed_at is None:
        return None
    return services.refill_after_empty(pump, performed_at, aspirated_ml)


def _preview_context(pump, form, now, reference_programs=None) -> dict:
    """The preview of what the typed values would give; never writes anything."""
    if not form.is_bound:
        return {}
    form.is_valid()
    data = form.cleaned_data
    missing = [
        form.fields[name].label
        for name in ("performed_at", "volume_added_ml", "concentration_mcg_per_ml")
        if data.get(name) is None
    ]
    if data.get("daily_dose_mcg") is None and not pump.pump_model.is_constant_flow:
        missing.append(form.fields["daily_dose_mcg"].label)
    if missing:
        return {"missing": missing}
    if data["volume_added_ml"] <= 0 or data["concentration_mcg_per_ml"] <= 0:
        return {"missing": [form.fields["volume_added_ml"].label, form.fields["concentration_mcg_per_ml"].label]}
    preview = preview_refill(
        pump,
        performed_at=data["performed_at"],
        aspirated_ml=data.get("aspirated_ml"),
        volume_added_ml=data["volume_added_ml"],
        concentration_mcg_per_ml=data["concentration_mcg_per_ml"],
        daily_dose_mcg=data.get("daily_dose_mcg"),
        bolus_mcg_per_day=data.get("bolus_mcg_per_day") or 0,
        drug_product=data.get("drug_product"),
        drug_expires_on=data.get("drug_expires_on"),
        now=now,
        reference_programs=reference_programs,
    )
    capacity = pump.pump_model.reservoir_ml
    return {
        "result": preview,
        "over_capacity": data["volume_added_ml"] > capacity,
        "capacity_ml": capacity,
        "current": projection_of(pump),
        "zone": pump.patient.clinic.timezone,
        "in_future": data["performed_at"] > now + services.CLOCK_SKEW,
    }


@require_POST
def refill_preview(request, pk):
    """The htmx partial beside the refill form: new due, alarm and empty dates as the nurse types."""
    pump = get_pump(request, pk)
    require_care_staff(request, pump)
    form = RefillForm(request.POST, pump=pump)
    return render(
        request,
        "patients/_refill_preview.html",
        {
            "pump": pump,
            "form": form,
            "preview": _preview_context(pump, form, timezone.now()),
            # The warning and the withdrawal checklist sit in the form: swapped in out of band.
            "empty": _empty_reservoir(pump, form),
            "empty_oob": True,
        },
    )


def _get_refill(request, pk):
    refills = scope(RefillVisit.objects, request.user, "pump__patient__clinic")
    return get_object_or_404(
        refills.select_related(
            "pump",
            "pump__patient",
            "pump__patient__clinic",
            "pump__pump_model",
            "pump__projection",
            "drug_product",
            "program",
            "performed_by",
        ),
        pk=pk,
    )


@require_http_methods(["GET"])
def refill_card(request, pk):
    """A printable card for the patient: next refill date, alarm date, the clinic's phone."""
    refill = _get_refill(request, pk)
    pump = refill.pump
    log_access(request.user, AccessLog.Action.VIEW, pump.patient, detail=f"refill card {refill.pk}")
    projection = projection_of(pump)
    is_latest = projection is not None and projection.filled_at == refill.performed_at
    return render(
        request,
        "patients/refill_card.html",
        {
            "refill": refill,
            "pump": pump,
            "patient": pump.patient,
            "clinic": pump.patient.clinic,
            "projection": projection if is_latest else None,
            "superseded": projection is not None and not is_latest,
        },
    )


def _amend_initial(refill) -> dict:
    program = refill.program
    return {
        "performed_at": refill.performed_at,
        "aspirated_ml": refill.aspirated_ml,
        "volume_added_ml": refill.volume_added_ml,
        "drug_product": refill.drug_product,
        "concentration_mcg_per_ml": plain(refill.concentration_mcg_per_ml),
        "drug_expires_on": refill.drug_expires_on,
        "drug_lot": refill.drug_lot,
        "daily_dose_mcg": plain(program.daily_dose_mcg),
        "bolus_mcg_per_day": plain(program.bolus_mcg_per_day),
        "stop_reason": program.stop_reason,
        "discrepancy_reason": refill.discrepancy_reason,
        "performed_elsewhere": refill.performed_elsewhere,
        "notes": refill.notes,
    }


@require_http_methods(["GET", "POST"])
def refill_amend(request, pk):
    """Correct a recorded refill with a reason; the original stays in the history."""
    refill = _get_refill(request, pk)
    pump = refill.pump
    require_care_staff(request, pump)
    if request.method == "POST":
        form = AmendRefillForm(request.POST, pump=pump)
        if form.is_valid():
            changes = form.amended_changes(refill)
            if not changes:
                form.add_error(None, "Nothing was changed: correct a value, then give the reason.")
            else:
                try:
                    services.amend_refill(
                        refill=refill, actor=request.user, amend_reason=form.cleaned_data["amend_reason"], **changes
                    )
                except services.Refusal as refusal:
                    add_refusal(form, refusal)
                else:
                    messages.success(request, "Refill amended. The original values stay in the history.")
                    return redirect("pump-detail", pk=pump.pk)
    else:
        form = AmendRefillForm(pump=pump, initial=_amend_initial(refill))
    context = {"refill": refill, "pump": pump, "form": form}
    return render_patient_page(
        request, "patients/refill_amend.html", context, pump.patient, detail=f"amend refill form {refill.pk}"
    )
