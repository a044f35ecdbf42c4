"""A pump's settings and a dose change between refills (with the live preview of the new due date)."""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from .. import services
from ..forms import add_refusal
from ..record_forms import ProgramChangeForm, PumpSettingsForm
from ..selectors import preview_program_change
from .common import get_pump, require_care_staff, require_perm
from .records import projection_of
from .refills import plain

MANAGE_PUMP = "patients.manage_pump"


@require_http_methods(["GET", "POST"])
def pump_edit(request, pk):
    """The pump's settings: assigned nurse, alarm threshold, ERI date, flow rate (with history)."""
    pump = get_pump(request, pk)
    require_perm(request, MANAGE_PUMP, pump)
    clinic = pump.patient.clinic
    if request.method == "POST":
        form = PumpSettingsForm(request.POST, clinic=clinic, pump_model=pump.pump_model)
        if form.is_valid():
            changes = form.changed_values(pump)
            if not changes:
                messages.info(request, "Nothing was changed.")
                return redirect("pump-detail", pk=pump.pk)
            try:
                services.update_pump(pump=pump, actor=request.user, **changes)
            except services.Refusal as refusal:
                add_refusal(form, refusal)
            else:
                messages.success(request, "Pump settings saved.")
                return redirect("pump-detail", pk=pump.pk)
    else:
        initial = {
            "assigned_nurse": pump.assigned_nurse,
            "lra_ml": plain(pump.lra_ml),
            "eri_on": pump.eri_on,
            "flow_rate_ml_per_day": plain(pump.flow_rate_ml_per_day) if pump.flow_rate_ml_per_day else None,
        }
        form = PumpSettingsForm(clinic=clinic, pump_model=pump.pump_model, initial=initial)
    return render(request, "patients/pump_edit.html", {"pump": pump, "patient": pump.patient, "form": form})


def _program_preview(pump, form, now) -> dict:
    if not form.is_bound:
        return {}
    form.is_valid()
    data = form.cleaned_data
    missing = [form.fields[n].label for n in ("effective_at", "daily_dose_mcg") if data.get(n) is None]
    if missing:
        return {"missing": missing}
    result = preview_program_change(
        pump,
        effective_at=data["effective_at"],
        daily_dose_mcg=data["daily_dose_mcg"],
        bolus_mcg_per_day=data.get("bolus_mcg_per_day") or 0,
        now=now,
    )
    if result is None:
        return {"unfilled": True}
    return {"result": result, "in_future": data["effective_at"] > now + services.CLOCK_SKEW}


@require_http_methods(["GET", "POST"])
def program_change(request, pk):
    """Change the dose between refills; the same service as ``POST /api/v1/pumps/{id}/programs/``."""
    pump = get_pump(request, pk)
    require_care_staff(request, pump)
    now = timezone.now().replace(second=0, microsecond=0)
    if request.method == "POST":
        form = ProgramChangeForm(request.POST, pump=pump)
        if form.is_valid():
            try:
                services.change_program(pump=pump, actor=request.user, **form.service_kwargs())
            except services.Refusal as refusal:
                add_refusal(form, refusal)
            else:
                messages.success(request, "Dose changed. The refill due date follows the new rate.")
                return redirect("pump-detail", pk=pump.pk)
    else:
        program = pump.programs.filter(effective_at__lte=now).order_by("-effective_at", "-id").first()
        initial = {"effective_at": now, "bolus_mcg_per_day": 0}
        if program is not None:
            initial.update(
                daily_dose_mcg=plain(program.daily_dose_mcg), bolus_mcg_per_day=plain(program.bolus_mcg_per_day)
            )
        form = ProgramChangeForm(pump=pump, initial=initial)
    return render(
        request,
        "patients/program_change.html",
        {
            "pump": pump,
            "patient": pump.patient,
            "form": form,
            "projection": projection_of(pump),
            "preview": _program_preview(pump, form, timezone.now()) if request.method == "POST" else None,
        },
    )


@require_POST
def program_preview(request, pk):
    pump = get_pump(request, pk)
    require_care_staff(request, pump)
    form = ProgramChangeForm(request.POST, pump=pump)
    return render(
        request,
        "patients/_program_preview.html",
        {"pump": pump, "preview": _program_preview(pump, form, timezone.now())},
    )
