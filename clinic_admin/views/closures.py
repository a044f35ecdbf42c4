"""Clinic closures and the closure planner. Admins enter, edit and remove closures (each save moves
the stored due dates at once); the clinic's care staff read the list and each closure's planner,
and book the refills from it."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from clinics.access import log_list_access
from clinics.calendar import calendar_of
from clinics.models import WEEKDAYS, AccessLog, ClinicClosure
from patients import services

from ..forms import ClosureForm, add_refusal
from ..planning import pumps_to_refill_before
from .common import MANAGE, clinic_for

READ = "patients.view_record"
BOOK = "patients.record_care"


def _save(request, clinic, form, closure=None):
    """Save through the service; on success, the planner of the saved closure."""
    try:
        saved = services.save_closure(
            clinic=clinic,
            actor=request.user,
            closure=closure,
            first_day=form.cleaned_data["first_day"],
            last_day=form.cleaned_data["last_day"],
            reason=form.cleaned_data["reason"],
        )
    except services.Refusal as refusal:
        add_refusal(form, refusal)
        return None
    messages.success(
        request,
        f"Closure saved: closed {saved.first_day:%a %Y-%m-%d} to {saved.last_day:%a %Y-%m-%d}. Refill due dates "
        "on closed days moved to the last open day before them. The pumps below must be refilled before it.",
    )
    return redirect("clinic-closure", clinic_id=clinic.pk, closure_id=saved.pk)


@require_http_methods(["GET", "POST"])
def closure_list(request, clinic_id):
    clinic = clinic_for(request, clinic_id, READ)
    can_manage = request.user.has_perm(MANAGE, clinic)
    form = ClosureForm(request.POST or None) if can_manage else None
    if request.method == "POST":
        if not can_manage:
            raise PermissionDenied("Only this clinic's administrators enter closures.")
        if form.is_valid() and (response := _save(request, clinic, form)):
            return response
    today = timezone.now().astimezone(clinic.zone).date()
    closures = ClinicClosure.objects.filter(clinic=clinic)
    return render(
        request,
        "clinics/closures.html",
        {
            "clinic": clinic,
            "section": "closures",
            "form": form,
            "can_manage": can_manage,
            "upcoming": closures.filter(last_day__gte=today),
            "past": closures.filter(last_day__lt=today).order_by("-first_day")[:20],
            "open_on": ", ".join(WEEKDAYS[day] for day in sorted(clinic.opening_weekdays)),
        },
    )


@require_http_methods(["GET", "POST"])
def closure_detail(request, clinic_id, closure_id):
    clinic = clinic_for(request, clinic_id, READ)
    closure = get_object_or_404(ClinicClosure, pk=closure_id, clinic=clinic)
    can_manage = request.user.has_perm(MANAGE, clinic)
    form = ClosureForm.for_closure(closure, request.POST or None) if can_manage else None
    if request.method == "POST":
        if not can_manage:
            raise PermissionDenied("Only this clinic's administrators edit closures.")
        if form.is_valid():
            if not form.has_changed():
                messages.info(request, "Nothing changed.")
                return redirect("clinic-closure", clinic_id=clinic.pk, closure_id=closure.pk)
            if response := _save(request, clinic, form, closure):
                return response
    planned = pumps_to_refill_before(clinic, closure, calendar_of(clinic))
    if planned:
        log_list_access(
            request.user,
            AccessLog.Action.VIEW,
            [clinic.pk],
            detail=f"closure planner {closure.first_day:%Y-%m-%d}: {len(planned)} pump(s) to refill before",
        )
    return render(
        request,
        "clinics/closure_detail.html",
        {
            "clinic": clinic,
            "section": "closures",
            "closure": closure,
            "form": form,
            "can_manage": can_manage,
            "can_book": request.user.has_perm(BOOK, clinic),
            "planned": planned,
        },
    )


@require_POST
def closure_remove(request, clinic_id, closure_id):
    clinic = clinic_for(request, clinic_id, MANAGE)
    closure = get_object_or_404(ClinicClosure, pk=closure_id, clinic=clinic)
    services.remove_closure(closure=closure, actor=request.user)
    messages.success(
        request,
        f"Closure {closure.first_day:%Y-%m-%d} to {closure.last_day:%Y-%m-%d} removed (its history is kept); "
        "refill due dates moved back.",
    )
    return redirect("clinic-closures", clinic_id=clinic.pk)
