"""The alert inbox, each alert's page (acknowledge and resolve by POST), and the polled status."""

from urllib.parse import urlsplit

from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from clinics.access import log_access, log_list_access, scope
from clinics.middleware import passive
from clinics.models import AccessLog, Role

from . import services
from .context import alert_context
from .models import PHYSICIAN_REVIEW_KINDS, Alert, AlertKind, ContactMethod, FailingAddress, Notification, Severity
from .review_forms import ReviewConclusionForm


def inbox(request):
    """My clinics' open alerts, most severe first, marking the ones I was notified of."""
    show = request.GET.get("show", "open")
    alerts = Alert.objects.for_user(request.user).select_related(
        "pump__patient", "pump__pump_model", "clinic", "acknowledged_by"
    )
    alerts = alerts.open() if show == "open" else alerts.filter(status=Alert.Status.RESOLVED)
    mine = set(Notification.objects.filter(recipient=request.user, alert__in=alerts).values_list("alert_id", flat=True))
    ordered = alerts.order_by("-severity", "raised_at") if show == "open" else alerts.order_by("-resolved_at")
    page = Paginator(ordered, 50).get_page(request.GET.get("page"))
    zones = sorted({alert.clinic.timezone for alert in page.object_list})
    log_list_access(
        request.user,
        AccessLog.Action.VIEW,
        (alert.clinic_id for alert in page.object_list if alert.pump_id),
        detail=f"alert inbox ({show}) page {page.number}: {len(page.object_list)} alert(s)",
    )
    return render(request, "alerts/inbox.html", {"page": page, "mine": mine, "show": show, "zones": zones})


def _alert_for_page(request, pk):
    return get_object_or_404(
        Alert.objects.for_user(request.user).select_related(
            "pump__patient__clinic", "pump__pump_model", "clinic", "acknowledged_by", "resolved_by"
        ),
        pk=pk,
    )


def alert_detail(request, pk, conclusion_form=None, status=200):
    # The email link lands here: opening it never acknowledges (mail scanners follow links).
    alert = _alert_for_page(request, pk)
    services.mark_read(user=request.user, alert=alert)
    if alert.pump_id:
        log_access(request.user, AccessLog.Action.VIEW, alert.pump.patient, detail=f"alert {alert.reference}")
    timeline = alert.timeline.select_related(
        "actor", "conclusion", "conclusion__concluded_by", "conclusion__follow_up_appointment"
    )
    context_template, work = alert_context(alert, timezone.now())
    is_review = alert.kind in PHYSICIAN_REVIEW_KINDS
    can_conclude = is_review and alert.is_open and request.user.has_perm("patients.review_clinical", alert)
    if can_conclude and conclusion_form is None:
        conclusion_form = ReviewConclusionForm()
    return render(
        request,
        "alerts/alert_detail.html",
        {
            "alert": alert,
            "timeline": timeline,
            "can_act": request.user.has_perm("alerts.acknowledge", alert),
            "can_resolve": request.user.has_perm(alert.resolve_permission, alert),
            "can_record": alert.pump_id is not None and request.user.has_perm("patients.record_care", alert.pump),
            "context_template": context_template,
            "work": work,
            "is_review": is_review,
            "conclusion_form": conclusion_form if can_conclude else None,
        },
        status=status,
    )


@require_POST
def conclude(request, pk):
    """A physician's conclusion of a review: resolves it (and books the follow-up, if any)."""
    alert = get_object_or_404(Alert.objects.for_user(request.user), pk=pk)
    if not request.user.has_perm("patients.review_clinical", alert):
        raise PermissionDenied
    form = ReviewConclusionForm(request.POST)
    if form.is_valid():
        try:
            conclusion = services.conclude_review(alert=alert, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            done = f"{alert.reference} concluded: {conclusion.get_outcome_display()}."
            if conclusion.follow_up_appointment:
                done += f" Device check booked ({conclusion.follow_up_appointment.reference})."
            messages.success(request, done)
            return redirect("alert-detail", pk=alert.pk)
    return alert_detail(request, pk, conclusion_form=form, status=400)


@require_POST
def acknowledge(request, pk):
    alert = get_object_or_404(Alert.objects.for_user(request.user), pk=pk)
    try:
        services.acknowledge_alert(alert=alert, actor=request.user)
    except ValidationError as exc:
        messages.warning(request, " ".join(exc.messages))
    else:
        messages.success(request, f"{alert.reference} acknowledged: repeats paused while you act.")
    if request.POST.get("next") == "inbox":
        return redirect("alert-inbox")
    return redirect("alert-detail", pk=alert.pk)


@require_POST
def resolve(request, pk):
    alert = get_object_or_404(Alert.objects.for_user(request.user), pk=pk)
    try:
        services.resolve_alert(alert=alert, actor=request.user, reason=request.POST.get("reason", ""))
    except PermissionDenied as exc:
        messages.error(request, str(exc) or "Your role in this clinic does not allow this.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"{alert.reference} resolved.")
    return redirect("alert-detail", pk=alert.pk)


def status_context(request) -> dict:
    """What every page's header shows: unread alerts, a stale-scan banner, nobody-to-notify alerts,
    failing addresses (for clinic admins)."""
    from .engine import alerting_is_stale

    user = request.user
    if not user.is_authenticated:
        return {}
    open_alerts = Alert.objects.for_user(user).open()
    admin_clinics = scope(FailingAddress.objects.filter(cleared_at__isnull=True), user, "clinic", {Role.CLINIC_ADMIN})
    # One query for the badge and the emergency line: unread alerts counted per severity.
    unread = dict(
        Notification.objects.unread_in_app(user)
        .values_list("alert__severity")
        .annotate(n=Count("alert", distinct=True))
        .order_by()
    )
    is_admin = user.is_superuser or _is_clinic_admin(user)
    return {
        "alerting_stale": alerting_is_stale(),
        "unread_alerts": sum(unread.values()),
        "unread_emergencies": unread.get(Severity.EMERGENCY, 0),
        "unreachable_alerts": open_alerts.filter(nobody_to_notify=True).count(),
        "failing_addresses": admin_clinics.count() if is_admin else 0,
        "rota_gaps": _rota_gaps(user) if is_admin else [],
        "my_failing_methods": ContactMethod.objects.filter(user=user, removed_at__isnull=True)
        .filter(Q(failing_since__isnull=False) | Q(suspended_at__isnull=False))
        .count(),
    }


def _rota_gaps(user, limit: int = 10) -> list[Alert]:
    """Open rota gaps of the clinics the user administers, soonest first (the admins' banner)."""
    gaps = Alert.objects.open().filter(kind=AlertKind.ROTA_GAP).select_related("clinic")
    return list(scope(gaps, user, "clinic", {Role.CLINIC_ADMIN}).order_by("period_starts_at", "pk")[:limit])


def _is_clinic_admin(user) -> bool:
    from clinics.access import roles_by_clinic

    return Role.CLINIC_ADMIN in roles_by_clinic(user).values()


@passive
@login_not_required
def status_fragment(request):
    """Polled by every page (htmx) with the navigation's badge swapped out of band; it must not
    extend an idle session (``@passive``). Once signed out, it says so and stops polling: never
    the login page inside the banner."""
    if not request.user.is_authenticated:
        return render(request, "alerts/_signed_out.html", {"next_path": _current_path(request)})
    # The banner's figures come from the context processor (``alerting``), computed once a request.
    return render(request, "alerts/_status.html", {"out_of_band": True})


def _current_path(request) -> str:
    """The page the poll came from, path only: a query string may hold a search term."""
    path = urlsplit(request.headers.get("HX-Current-URL", "")).path
    return path if url_has_allowed_host_and_scheme(path, allowed_hosts=None) and path.startswith("/") else "/"
