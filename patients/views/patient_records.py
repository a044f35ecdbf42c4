"""Registering and editing patients, leaving care and coming back, the handover summary, and the
patients with no pump in service (explanted, awaiting a new one: they must not vanish)."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Max
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from clinics.access import log_access, log_list_access
from clinics.models import AccessLog, Clinic

from .. import services
from ..forms import add_refusal
from ..models import Patient, Pump
from ..record_forms import OTHER_RISK_FIELDS, WITHDRAWAL_RISK_FIELDS, PatientForm, PatientStatusForm
from .common import get_pump, render_patient_page

EDIT_PATIENT = "patients.register_patient"


def _get_patient(request, pk):
    return get_object_or_404(Patient.objects.for_user(request.user).select_related("clinic"), pk=pk)


def _require_edit(request, obj) -> None:
    if not request.user.has_perm(EDIT_PATIENT, obj):
        raise PermissionDenied("Only staff of this clinic register and edit its patients.")


def registering_clinics(user) -> list[Clinic]:
    """The clinics where ``user`` may register a patient (every role of the clinic may)."""
    return [c for c in Clinic.objects.for_user(user).order_by("name") if user.has_perm(EDIT_PATIENT, c)]


def _form_context(form) -> dict:
    return {
        "form": form,
        "withdrawal_fields": [form[name] for name in WITHDRAWAL_RISK_FIELDS],
        "other_fields": [form[name] for name in OTHER_RISK_FIELDS],
    }


@require_http_methods(["GET", "POST"])
def patient_create(request):
    clinics = registering_clinics(request.user)
    if not clinics:
        raise PermissionDenied("Only staff of a clinic register its patients.")
    if request.method == "POST":
        form = PatientForm(request.POST, clinics=clinics)
        if form.is_valid():
            try:
                patient = services.create_patient(
                    clinic=form.chosen_clinic, actor=request.user, **form.service_kwargs()
                )
            except services.Refusal as refusal:
                add_refusal(form, refusal)
            else:
                messages.success(request, f"{patient.family_name}, {patient.given_name} registered.")
                return redirect("patient-detail", pk=patient.pk)
    else:
        form = PatientForm(clinics=clinics)
    return render(request, "patients/patient_form.html", {**_form_context(form), "title": "New patient"})


@require_http_methods(["GET", "POST"])
def patient_edit(request, pk):
    patient = _get_patient(request, pk)
    _require_edit(request, patient)
    if request.method == "POST":
        form = PatientForm(request.POST, clinics=[patient.clinic], patient=patient)
        if form.is_valid():
            changes = form.changed_values()
            if not changes:
                messages.info(request, "Nothing was changed.")
                return redirect("patient-detail", pk=patient.pk)
            try:
                services.update_patient(patient=patient, actor=request.user, **changes)
            except services.Refusal as refusal:
                add_refusal(form, refusal)
            else:
                messages.success(request, "Patient record saved. Refill due dates follow the new margin.")
                return redirect("patient-detail", pk=patient.pk)
    else:
        initial = {name: getattr(patient, name) for name in PatientForm.base_fields if name != "clinic"}
        form = PatientForm(clinics=[patient.clinic], patient=patient, initial=initial)
    context = {**_form_context(form), "title": "Edit patient", "patient": patient}
    return render_patient_page(request, "patients/patient_form.html", context, patient, detail="edit patient form")


@require_http_methods(["GET", "POST"])
def patient_status(request, pk):
    """Transferred, deceased, or active again: from a date, with a reason (nothing is deleted)."""
    patient = _get_patient(request, pk)
    _require_edit(request, patient)
    today = timezone.now().astimezone(patient.clinic.zone).date()
    if request.method == "POST":
        form = PatientStatusForm(request.POST, patient=patient)
        if form.is_valid():
            try:
                services.change_patient_status(patient=patient, actor=request.user, **form.service_kwargs())
            except services.Refusal as refusal:
                add_refusal(form, refusal)
            else:
                patient.refresh_from_db()
                messages.success(request, f"Patient is now {patient.get_status_display().lower()}.")
                return redirect("patient-detail", pk=patient.pk)
    else:
        form = PatientStatusForm(patient=patient, initial={"effective_on": today})
    pumps = list(patient.pumps.filter(status=Pump.Status.ACTIVE).select_related("pump_model"))
    context = {"form": form, "patient": patient, "pumps": pumps}
    return render_patient_page(request, "patients/patient_status.html", context, patient, detail="patient status form")


@require_GET
def handover_summary(request, pk):
    """A one-page summary of a pump for the receiving clinic (printable)."""
    pump = get_pump(request, pk)
    patient = pump.patient
    log_access(request.user, AccessLog.Action.VIEW, patient, detail=f"handover summary {pump.reference}")
    summary = services.handover_summary(pump)
    return render(
        request,
        "patients/handover_summary.html",
        {"pump": pump, "patient": patient, "clinic": patient.clinic, "summary": summary},
    )


@require_GET
def patients_without_pump(request):
    """Active patients with no pump in service: explanted (for infection, say) and awaiting a new
    one, or registered and not yet implanted."""
    patients = list(
        Patient.objects.for_user(request.user)
        .active()
        .exclude(pumps__status=Pump.Status.ACTIVE)
        .select_related("clinic")
        .annotate(last_explanted_on=Max("pumps__explanted_on"))
        .order_by("family_name", "given_name", "id")
    )
    log_list_access(
        request.user,
        AccessLog.Action.VIEW,
        (patient.clinic_id for patient in patients),
        detail=f"patients without a pump: {len(patients)} patient(s)",
    )
    return render(
        request,
        "patients/patients_without_pump.html",
        {"patients": patients, "can_register": bool(registering_clinics(request.user))},
    )
