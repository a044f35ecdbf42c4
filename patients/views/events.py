"""The patient-call quick form: an alarm heard, symptoms reported; emergencies said plainly."""

from django.contrib import messages
from django.shortcuts import redirect
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from .. import services
from ..forms import PumpEventForm, add_refusal
from .common import get_pump, render_patient_page, require_care_staff

EMERGENCY_MESSAGE = services.EMERGENCY_MESSAGE


@require_http_methods(["GET", "POST"])
def pump_event(request, pk):
    pump = get_pump(request, pk)
    require_care_staff(request, pump)
    if request.method == "POST":
        form = PumpEventForm(request.POST, pump=pump)
        if form.is_valid():
            try:
                event = services.record_pump_event(
                    pump=pump,
                    actor=request.user,
                    kind=form.cleaned_data["kind"],
                    occurred_at=form.cleaned_data["occurred_at"],
                    source=form.cleaned_data["source"],
                    symptoms=form.symptoms,
                    notes=form.cleaned_data["notes"],
                )
            except services.Refusal as refusal:
                add_refusal(form, refusal)
            else:
                if services.is_emergency(event.kind, event.symptoms):
                    messages.error(request, EMERGENCY_MESSAGE)
                    return render_patient_page(
                        request,
                        "patients/pump_event_emergency.html",
                        {"pump": pump, "patient": pump.patient, "event": event, "message": EMERGENCY_MESSAGE},
                        pump.patient,
                        detail=f"pump event {event.pk}",
                    )
                messages.success(request, f"{event.get_kind_display()} recorded.")
                return redirect("pump-detail", pk=pump.pk)
    else:
        form = PumpEventForm(pump=pump, initial={"occurred_at": timezone.now()})
    return render_patient_page(
        request,
        "patients/pump_event_form.html",
        {
            "pump": pump,
            "patient": pump.patient,
            "form": form,
            "emergency_message": EMERGENCY_MESSAGE,
            "emergency_kinds": ["critical_alarm", "withdrawal_symptoms"],
        },
        pump.patient,
        detail=f"pump event form {pump.reference}",
    )
