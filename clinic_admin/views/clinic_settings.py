"""The clinic settings page: saved only through ``update_clinic_settings``, which recomputes
every pump's projection in the same transaction."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render

from patients.models import PumpProjection
from patients.services import update_clinic_settings

from ..forms import ClinicSettingsForm, add_refusal
from .common import MANAGE, clinic_for


def _due_dates(clinic) -> dict:
    return dict(PumpProjection.objects.filter(pump__patient__clinic=clinic).values_list("pump_id", "refill_due_on"))


def clinic_settings(request, clinic_id):
    clinic = clinic_for(request, clinic_id, MANAGE)
    form = ClinicSettingsForm(request.POST or None, clinic=clinic)
    if request.method == "POST" and form.is_valid():
        changed = form.changed_values()
        if not changed:
            messages.info(request, "Nothing changed.")
            return redirect("clinic-settings", clinic_id=clinic.pk)
        before = _due_dates(clinic)
        try:
            update_clinic_settings(clinic=clinic, actor=request.user, **changed)
        except ValidationError as refusal:
            add_refusal(form, refusal)
        else:
            after = _due_dates(clinic)
            moved = sum(1 for pump_id, due_on in after.items() if before.get(pump_id) != due_on)
            labels = "; ".join(form.fields[name].label for name in changed)
            messages.success(
                request,
                f"Settings saved. Changed: {labels}. Every pump's projection was recomputed: "
                f"{moved} refill due date{'s' if moved != 1 else ''} moved.",
            )
            return redirect("clinic-settings", clinic_id=clinic.pk)
    last_change = clinic.history.select_related("history_user").first()
    return render(
        request,
        "clinics/settings.html",
        {"clinic": clinic, "section": "settings", "form": form, "last_change": last_change},
    )
