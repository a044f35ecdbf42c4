"""A nurse's personal calendar feed (iCalendar) behind a private, revocable URL.

Events are the nurse's appointments (a reference, its kind and a link) and her on-call shifts (the
rota's name and clinic) — never a patient identifier: calendar
apps sync to phones and third-party servers. Staff follow the link and log in to see who.
"""

from datetime import UTC, timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from clinics import services as clinic_services
from clinics.access import log_list_access, roles_by_clinic
from clinics.models import AccessLog
from clinics.selectors import on_call_shifts_of

from ..models import Appointment

PAST_DAYS = 30
ON_CALL_WEEKS = 8
EVENT_MINUTES = 30


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")


def _stamp(moment) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def render_feed(appointments, now, on_call=()) -> str:
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//ITB Tracker//Appointments//EN",
        "CALSCALE:GREGORIAN",
        "X-WR-CALNAME:ITB Tracker appointments",
    ]
    for appointment in appointments:
        link = f"{settings.SITE_URL}{reverse('pump-detail', args=[appointment.pump_id])}"
        lines += [
            "BEGIN:VEVENT",
            f"UID:{appointment.reference}@itb-tracker",
            f"DTSTAMP:{_stamp(now)}",
            f"DTSTART:{_stamp(appointment.scheduled_for)}",
            f"DTEND:{_stamp(appointment.scheduled_for + timedelta(minutes=EVENT_MINUTES))}",
            f"SUMMARY:{_escape(f'{appointment.get_kind_display()} {appointment.reference}')}",
            f"DESCRIPTION:{_escape(f'Log in to ITB Tracker to see the patient: {link}')}",
            f"URL:{link}",
            "END:VEVENT",
        ]
    for rotation, shift in on_call:
        # The rota says who is on call, never for which patient: nothing about patients here.
        link = f"{settings.SITE_URL}{reverse('home')}"
        lines += [
            "BEGIN:VEVENT",
            f"UID:oncall-{rotation.pk}-{_stamp(shift.starts_at)}@itb-tracker",
            f"DTSTAMP:{_stamp(now)}",
            f"DTSTART:{_stamp(shift.starts_at)}",
            f"DTEND:{_stamp(shift.ends_at)}",
            f"SUMMARY:{_escape(f'On call: {rotation.name} ({rotation.clinic.name})')}",
            f"DESCRIPTION:{_escape(f'You are on call on this rota. ITB Tracker: {link}')}",
            "TRANSP:OPAQUE",
            "END:VEVENT",
        ]
    lines.append("END:VCALENDAR")
    return "\r\n".join(lines) + "\r\n"


@login_not_required
@require_GET
def calendar_feed(request, token):
    now = timezone.now()
    user = clinic_services.calendar_feed_user(token, now=now)
    if user is None:
        raise Http404("No such feed")
    appointments = list(
        Appointment.objects.for_user(user)
        .filter(
            assigned_to=user, status=Appointment.Status.SCHEDULED, scheduled_for__gte=now - timedelta(days=PAST_DAYS)
        )
        .select_related("pump__patient")
        .order_by("scheduled_for")
    )
    on_call = on_call_shifts_of(user, now - timedelta(days=PAST_DAYS), now + timedelta(weeks=ON_CALL_WEEKS))
    # Logged in each of the user's clinics (one INSERT), so their admins see every fetch — a feed
    # fetched from somewhere unexpected is a leaked link to revoke.
    clinic_ids = set(roles_by_clinic(user)) | {rotation.clinic_id for rotation, _ in on_call}
    log_list_access(
        user,
        AccessLog.Action.FEED,
        clinic_ids | {appointment.access_clinic_id for appointment in appointments},
        detail=f"calendar feed: {len(appointments)} appointment(s), {len(on_call)} on-call shift(s)",
    )
    response = HttpResponse(render_feed(appointments, now, on_call), content_type="text/calendar; charset=utf-8")
    response["Cache-Control"] = "private, no-store"
    return response


def calendar_settings(request):
    return render(request, "patients/calendar.html", {"feeds": request.user.calendar_feeds.filter(revoked_at=None)})


@require_POST
def calendar_issue(request):
    token = clinic_services.issue_calendar_feed(user=request.user)
    url = f"{settings.SITE_URL}{reverse('calendar-feed', args=[token])}"
    return render(request, "patients/calendar.html", {"new_url": url, "feeds": [True]})


@require_POST
def calendar_revoke(request):
    clinic_services.revoke_calendar_feeds(user=request.user)
    messages.success(request, "Your calendar link no longer works. Create a new one to subscribe again.")
    return redirect("calendar")
