"""Booking appointments, marking them done, missed or cancelled, and the clinic's week view."""

from datetime import date, datetime, time, timedelta

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from clinics.access import log_list_access
from clinics.calendar import calendar_of
from clinics.models import AccessLog, Clinic

from .. import services
from ..forms import AppointmentForm, ScheduleFilterForm, add_refusal
from ..models import Appointment
from .common import can_record_care, get_pump, next_url, render_patient_page, require_care_staff
from .records import projection_of

DEFAULT_HOUR = 9


def _suggested_time(pump, now) -> datetime:
    """The refill due date (an open day) at 9:00 clinic time, or the next open day's 9:00 when
    that has passed."""
    zone = pump.patient.clinic.zone
    today = now.astimezone(zone).date()
    projection = projection_of(pump)
    day = projection.refill_due_on if projection is not None else today + timedelta(days=1)
    if day <= today:
        calendar = calendar_of(pump.patient.clinic)
        day = today + timedelta(days=1)
        for _ in range(60):  # the next open day; a clinic closed longer gets the day after today
            if not calendar.is_closed(day):
                break
            day += timedelta(days=1)
        else:
            day = today + timedelta(days=1)
    return datetime.combine(day, time(DEFAULT_HOUR), tzinfo=zone)


@require_http_methods(["GET", "POST"])
def appointment_create(request, pk):
    pump = get_pump(request, pk)
    require_care_staff(request, pump)
    back = next_url(request, reverse("pump-detail", args=[pump.pk]))
    if request.method == "POST":
        form = AppointmentForm(request.POST, pump=pump)
        if form.is_valid():
            try:
                appointment, warnings = services.schedule_appointment(
                    pump=pump,
                    actor=request.user,
                    kind=form.cleaned_data["kind"],
                    scheduled_for=form.cleaned_data["scheduled_for"],
                    assigned_to=form.cleaned_data["assigned_to"],
                    notes=form.cleaned_data["notes"],
                    closed_day_confirmed=form.cleaned_data["closed_day_confirmed"],
                )
            except services.Refusal as refusal:
                if "closed" in " ".join(refusal.message_dict.get("scheduled_for", [])):
                    form.ask_closed_day()
                add_refusal(form, refusal)
            else:
                when = appointment.scheduled_for.astimezone(pump.patient.clinic.zone)
                messages.success(
                    request,
                    f"{appointment.get_kind_display()} booked for {when:%Y-%m-%d %H:%M} ({appointment.reference}).",
                )
                for warning in warnings:
                    messages.warning(request, warning)
                return redirect(back)
    else:
        form = AppointmentForm(
            pump=pump,
            initial={
                "kind": request.GET.get("kind") or Appointment.Kind.REFILL,
                "scheduled_for": _suggested_time(pump, timezone.now()),
                "assigned_to": pump.assigned_nurse_id,
            },
        )
    return render_patient_page(
        request,
        "patients/appointment_form.html",
        {"pump": pump, "patient": pump.patient, "form": form, "projection": projection_of(pump), "next": back},
        pump.patient,
        detail=f"appointment form {pump.reference}",
    )


STATUS_ACTIONS = {
    "complete": (services.complete_appointment, "marked completed"),
    "missed": (services.mark_appointment_missed, "marked missed"),
    "cancel": (services.cancel_appointment, "cancelled"),
}


@require_POST
def appointment_status(request, pk, action):
    if action not in STATUS_ACTIONS:
        raise Http404("No such action.")
    appointment = get_object_or_404(
        Appointment.objects.for_user(request.user).select_related("pump", "pump__patient"), pk=pk
    )
    if not can_record_care(request, appointment.pump):
        raise PermissionDenied("Only nurses and physicians of this clinic change appointments.")
    change, done = STATUS_ACTIONS[action]
    try:
        change(appointment=appointment, actor=request.user)
    except services.Refusal as refusal:
        for message_list in refusal.message_dict.values():
            for message in message_list:
                messages.error(request, message)
    else:
        messages.success(request, f"Appointment {appointment.reference} {done}.")
    return redirect(next_url(request, reverse("pump-detail", args=[appointment.pump_id])))


def week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


@require_http_methods(["GET"])
def schedule_week(request):
    """One clinic's appointments for a week (Monday to Sunday), in the clinic's time zone."""
    clinics = Clinic.objects.for_user(request.user)
    form = ScheduleFilterForm(request.GET or None, clinics=clinics)
    data = form.cleaned_data if form.is_valid() else {}
    clinic = data.get("clinic") or clinics.first()
    if clinic is None:
        return render(request, "patients/schedule_week.html", {"form": form, "clinic": None})
    zone = clinic.zone
    today = timezone.now().astimezone(zone).date()
    monday = week_start(data.get("week") or today)
    start = datetime.combine(monday, time.min, tzinfo=zone)
    end = datetime.combine(monday + timedelta(days=7), time.min, tzinfo=zone)
    appointments = (
        Appointment.objects.for_user(request.user)
        .filter(pump__patient__clinic=clinic, scheduled_for__gte=start, scheduled_for__lt=end)
        .select_related("pump", "pump__patient", "pump__pump_model", "assigned_to")
        .order_by("scheduled_for", "id")
    )
    form = ScheduleFilterForm(initial={"week": monday, "clinic": clinic}, clinics=clinics)
    calendar = calendar_of(clinic)
    days = [(day, [], calendar.why_closed(day)) for day in (monday + timedelta(days=n) for n in range(7))]
    appointments = list(appointments)
    for appointment in appointments:
        appointment.local = appointment.scheduled_for.astimezone(zone)
        days[(appointment.local.date() - monday).days][1].append(appointment)
    if appointments:
        log_list_access(
            request.user,
            AccessLog.Action.VIEW,
            [clinic.pk],
            detail=f"week schedule from {monday:%Y-%m-%d}: {len(appointments)} appointment(s)",
        )
    return render(
        request,
        "patients/schedule_week.html",
        {
            "form": form,
            "clinic": clinic,
            "days": days,
            "today": today,
            "monday": monday,
            "sunday": monday + timedelta(days=6),
            "previous_week": monday - timedelta(days=7),
            "next_week": monday + timedelta(days=7),
            "this_week": week_start(today),
            "can_record": request.user.has_perm("patients.record_care", clinic),
        },
    )
