"""A pump's life from the staff pages: implant with its first fill, settings, explant,
replacement, and a dose change between refills — each with the live preview where dates move."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from clinics.access import scope

from .. import services
from ..forms import add_refusal
from ..models import Patient, Program, Pump
from ..record_forms import ExplantForm, ImplantForm, ProgramChangeForm, PumpSettingsForm, ReplaceForm
from ..selectors import preview_program_change
from .common import get_pump, render_patient_page, require_care_staff, require_perm
from .records import projection_of
from .refills import _preview_context, plain

MANAGE_PUMP = "patients.manage_pump"


def _care_patient(request, pk):
    patient = get_object_or_404(Patient.objects.for_user(request.user).select_related("clinic"), pk=pk)
    require_perm(request, MANAGE_PUMP, patient)
    return patient


def _implant_initial(patient, now, old_pump=None) -> dict:
    today = now.astimezone(patient.clinic.zone).date()
    initial = {"implanted_on": today, "performed_at": now, "bolus_mcg_per_day": 0}
    if old_pump is not None:
        initial.update(explanted_on=today, assigned_nurse=old_pump.assigned_nurse, pump_model=old_pump.pump_model)
        last = old_pump.programs.order_by("-effective_at", "-id").first()
        if last is not None:
            initial.update(
                daily_dose_mcg=plain(last.daily_dose_mcg),
                bolus_mcg_per_day=plain(last.bolus_mcg_per_day),
                concentration_mcg_per_ml=plain(last.concentration_mcg_per_ml),
            )
    return initial


def _implant_preview(form, now, old_pump=None) -> dict:
    """The live preview of the first fill, on the pump as typed (unsaved)."""
    if not form.is_bound:
        return {}
    form.is_valid()
    pump = form.unsaved_pump()
    if pump is None:
        return {"missing": [form.fields["pump_model"].label]}
    reference = list(old_pump.programs.order_by("effective_at", "id")) if old_pump is not None else None
    return _preview_context(pump, form, now, reference_programs=reference)


def _implant_page(request, patient, form, old_pump=None):
    preview = _implant_preview(form, timezone.now(), old_pump) if request.method == "POST" else None
    return render_patient_page(
        request,
        "patients/pump_implant.html",
        {
            "patient": patient,
            "pump": old_pump,
            "old_pump": old_pump,
            "form": form,
            "model_facts": form.model_facts,
            "preview": preview,
            "preview_pump": form.unsaved_pump() if preview else None,
        },
        patient,
        detail=f"replace pump form {old_pump.reference}" if old_pump is not None else "implant pump form",
    )


@require_http_methods(["GET", "POST"])
def pump_implant(request, pk):
    """Implant a pump with its first fill and initial program, in one transaction."""
    patient = _care_patient(request, pk)
    now = timezone.now().replace(second=0, microsecond=0)
    if request.method == "POST":
        form = ImplantForm(request.POST, patient=patient)
        if form.is_valid():
            try:
                pump = services.implant_pump(patient=patient, actor=request.user, **form.implant_kwargs())
            except services.Refusal as refusal:
                add_refusal(form, refusal)
            else:
                messages.success(request, "Pump implanted and filled: it is on the refill worklist.")
                return redirect("pump-detail", pk=pump.pk)
    else:
        form = ImplantForm(patient=patient, initial=_implant_initial(patient, now))
    return _implant_page(request, patient, form)


@require_POST
def pump_implant_preview(request, pk):
    patient = _care_patient(request, pk)
    old_pump = None
    if request.POST.get("replaces"):
        old_pump = get_object_or_404(Pump.objects.filter(patient=patient), pk=request.POST["replaces"])
    form_class = ReplaceForm if old_pump is not None else ImplantForm
    form = form_class(request.POST, patient=patient, reference_pump=old_pump)
    preview = _implant_preview(form, timezone.now(), old_pump)
    return render(request, "patients/_refill_preview.html", {"pump": form.unsaved_pump(), "preview": preview})


@require_http_methods(["GET", "POST"])
def pump_replace(request, pk):
    """Explant this pump and implant its successor with a first fill, in one step."""
    old_pump = get_pump(request, pk)
    require_perm(request, MANAGE_PUMP, old_pump)
    patient = old_pump.patient
    now = timezone.now().replace(second=0, microsecond=0)
    if request.method == "POST":
        form = ReplaceForm(request.POST, patient=patient, reference_pump=old_pump)
        if form.is_valid():
            try:
                pump = services.replace_pump(
                    pump=old_pump,
                    actor=request.user,
                    explanted_on=form.cleaned_data["explanted_on"],
                    **form.implant_kwargs(),
                )
            except services.Refusal as refusal:
                add_refusal(form, refusal)
            else:
                messages.success(request, "Old pump explanted; the new pump is implanted, filled and on the worklist.")
                return redirect("pump-detail", pk=pump.pk)
    else:
        form = ReplaceForm(patient=patient, reference_pump=old_pump, initial=_implant_initial(patient, now, old_pump))
    return _implant_page(request, patient, form, old_pump)


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
    context = {"pump": pump, "patient": pump.patient, "form": form}
    return render_patient_page(
        request, "patients/pump_edit.html", context, pump.patient, detail=f"pump settings form {pump.reference}"
    )


@require_http_methods(["GET", "POST"])
def pump_explant(request, pk):
    pump = get_pump(request, pk)
    require_perm(request, MANAGE_PUMP, pump)
    if request.method == "POST":
        form = ExplantForm(request.POST)
        if form.is_valid():
            try:
                services.explant_pump(pump=pump, actor=request.user, **form.cleaned_data)
            except services.Refusal as refusal:
                add_refusal(form, refusal)
            else:
                messages.success(request, "Pump explanted: it has left the worklist and raises no more alerts.")
                return redirect("patient-detail", pk=pump.patient.pk)
    else:
        form = ExplantForm(initial={"explanted_on": timezone.now().astimezone(pump.patient.clinic.zone).date()})
    context = {"pump": pump, "patient": pump.patient, "form": form}
    return render_patient_page(
        request, "patients/pump_explant.html", context, pump.patient, detail=f"explant form {pump.reference}"
    )


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
    return render_patient_page(
        request,
        "patients/program_change.html",
        {
            "pump": pump,
            "patient": pump.patient,
            "form": form,
            "projection": projection_of(pump),
            "preview": _program_preview(pump, form, timezone.now()) if request.method == "POST" else None,
        },
        pump.patient,
        detail=f"dose change form {pump.reference}",
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


@require_POST
def program_countersign(request, pk):
    """A physician countersigns a nurse-entered order; the same service as
    ``POST /api/v1/programs/{id}/countersign/``. Anyone else is told so on the page."""
    programs = scope(Program.objects.select_related("pump__patient__clinic"), request.user, "pump__patient__clinic")
    program = get_object_or_404(programs, pk=pk)
    try:
        services.countersign_program(program=program, actor=request.user)
    except PermissionDenied as denied:
        messages.error(request, str(denied))
    except services.Refusal as refusal:
        messages.error(request, " ".join(refusal.messages))
    else:
        messages.success(request, f"Order of {program.daily_dose_mcg.normalize():f} mcg/day countersigned.")
    if request.POST.get("next") == "review":
        return redirect("review-queue")
    return redirect("pump-detail", pk=program.pump_id)
