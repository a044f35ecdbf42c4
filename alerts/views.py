"""The alert inbox, each alert's page (acknowledge and resolve by POST), and the polled status."""

from collections import Counter
from datetime import timedelta
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import BooleanField, Count, Exists, ExpressionWrapper, OuterRef, Q
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from clinics.access import clinic_ids_for, log_access, log_list_access, scope
from clinics.middleware import passive
from clinics.models import AccessLog, Role
from patients import services as patient_services
from patients.models import Program

from . import services
from .context import alert_context
from .models import PHYSICIAN_REVIEW_KINDS, Alert, AlertKind, ContactMethod, FailingAddress, Notification, Severity
from .review_forms import ReviewConclusionForm

# The review queue shows this many of each list a page (each list has its own pages).
REVIEW_QUEUE_PAGE = 50


# The inbox's filters, kept in the session so that they survive leaving the inbox and coming back
# (an alert page, the pump page) as well as the pagination links, which carry them too.
INBOX_FILTERS = ("show", "kind", "severity", "mine")
INBOX_SESSION_KEY = "alert_inbox_filters"


def inbox_filters(request) -> dict[str, str]:
    """The filters in effect: the query string's when it names any (saved to the session), else
    the session's; ``?clear=1`` drops them."""
    if "clear" in request.GET:
        request.session.pop(INBOX_SESSION_KEY, None)
        raw = {}
    elif any(name in request.GET for name in INBOX_FILTERS):
        raw = {name: request.GET.get(name, "") for name in INBOX_FILTERS}
    else:
        raw = request.session.get(INBOX_SESSION_KEY, {})
    filters = {
        "show": "resolved" if raw.get("show") == "resolved" else "open",
        "kind": raw.get("kind", "") if raw.get("kind") in AlertKind.values else "",
        "severity": raw.get("severity", "") if raw.get("severity", "") in {str(v) for v in Severity.values} else "",
        "mine": "1" if raw.get("mine") in ("1", "on", "true") else "",
    }
    if "clear" not in request.GET and raw:
        request.session[INBOX_SESSION_KEY] = filters
    return filters


def for_me(user) -> Q:
    """Alerts that are the user's: a notification named them (any escalation step or channel),
    the pump is assigned to them, or the unsigned order names them as its physician."""
    notified = Notification.objects.filter(alert=OuterRef("pk"), recipient=user)
    return Q(Exists(notified)) | Q(pump__assigned_nurse=user) | Q(program__ordered_by=user)


def inbox(request):
    """My clinics' alerts, most severe first, filtered by status, kind, severity and "for me"."""
    filters = inbox_filters(request)
    alerts = (
        Alert.objects.for_user(request.user)
        .select_related("pump__patient", "pump__pump_model", "clinic", "acknowledged_by")
        .annotate(for_me=ExpressionWrapper(for_me(request.user), output_field=BooleanField()))
    )
    show = filters["show"]
    alerts = alerts.open() if show == "open" else alerts.filter(status=Alert.Status.RESOLVED)
    if filters["kind"]:
        alerts = alerts.filter(kind=filters["kind"])
    if filters["severity"]:
        alerts = alerts.filter(severity=int(filters["severity"]))
    if filters["mine"]:
        alerts = alerts.filter(for_me=True)
    if show == "open":
        ordered = alerts.order_by("-severity", "raised_at", "pk")
    else:
        ordered = alerts.order_by("-resolved_at", "-pk")
    page = Paginator(ordered, 50).get_page(request.GET.get("page"))
    zones = sorted({alert.clinic.timezone for alert in page.object_list})
    log_list_access(
        request.user,
        AccessLog.Action.VIEW,
        (alert.clinic_id for alert in page.object_list if alert.pump_id),
        detail=f"alert inbox ({show}) page {page.number}: {len(page.object_list)} alert(s)",
    )
    others = {name: filters[name] for name in ("kind", "severity", "mine") if filters[name]}
    return render(
        request,
        "alerts/inbox.html",
        {
            "page": page,
            "show": show,
            "filters": filters,
            "filtered": any(filters[name] for name in ("kind", "severity", "mine")),
            "page_query": urlencode({"show": show, **others}),
            "other_filters_query": urlencode(others),
            "kinds": AlertKind.choices,
            "severities": Severity.choices,
            "zones": zones,
        },
    )


def review_clinic_ids(user):
    """The clinics where the user is a physician (None: every clinic, a superuser); [] for others."""
    return clinic_ids_for(user, {Role.PHYSICIAN})


def orders_to_countersign(user, clinic_ids):
    """Nurse-entered orders waiting for a countersignature in these clinics, the user's own first."""
    orders = Program.objects.filter(countersign_requested_at__isnull=False, verified_at__isnull=True)
    if clinic_ids is not None:
        orders = orders.filter(pump__patient__clinic_id__in=clinic_ids)
    return orders.annotate(
        mine=ExpressionWrapper(Q(ordered_by=user), output_field=BooleanField()),
    ).order_by("-mine", "countersign_requested_at", "pk")


def open_reviews(clinic_ids):
    reviews = Alert.objects.open().filter(kind__in=PHYSICIAN_REVIEW_KINDS)
    if clinic_ids is not None:
        reviews = reviews.filter(clinic_id__in=clinic_ids)
    return reviews


def review_queue(request):
    """ "Needs physician review": the orders to countersign and the open physician-review alerts
    of the clinics where the user is a physician."""
    clinic_ids = review_clinic_ids(request.user)
    if clinic_ids == []:
        raise PermissionDenied("The review queue is for physicians.")
    orders_page = Paginator(
        orders_to_countersign(request.user, clinic_ids).select_related(
            "pump__patient__clinic", "pump__pump_model", "ordered_by", "entered_by"
        ),
        REVIEW_QUEUE_PAGE,
    ).get_page(request.GET.get("orders_page"))
    reviews_page = Paginator(
        open_reviews(clinic_ids)
        .select_related("pump__patient", "pump__pump_model", "clinic", "acknowledged_by")
        .order_by("raised_at", "pk"),
        REVIEW_QUEUE_PAGE,
    ).get_page(request.GET.get("reviews_page"))
    orders, reviews = list(orders_page.object_list), list(reviews_page.object_list)
    # The counts are of the whole queue, not of the page shown.
    counts = Counter(dict(open_reviews(clinic_ids).values_list("kind").annotate(n=Count("pk")).order_by()))
    now = timezone.now()
    overdue_before = now - timedelta(hours=settings.ORDER_COUNTERSIGN_HOURS)
    zones = sorted({o.pump.patient.clinic.timezone for o in orders} | {a.clinic.timezone for a in reviews})
    log_list_access(
        request.user,
        AccessLog.Action.VIEW,
        [o.pump.patient.clinic_id for o in orders] + [a.clinic_id for a in reviews if a.pump_id],
        detail=f"physician review queue: {len(orders)} order(s), {len(reviews)} review(s)",
    )
    return render(
        request,
        "alerts/review_queue.html",
        {
            "orders": orders,
            "reviews": reviews,
            "orders_page": orders_page,
            "reviews_page": reviews_page,
            "kind_counts": [(label, counts[k]) for k, label in AlertKind.choices if k in PHYSICIAN_REVIEW_KINDS],
            "overdue_before": overdue_before,
            "countersign_hours": settings.ORDER_COUNTERSIGN_HOURS,
            "zones": zones,
        },
    )


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
    # An unsigned order closes by its countersignature, not by a conclusion.
    is_review = alert.kind in PHYSICIAN_REVIEW_KINDS and alert.kind != AlertKind.ORDER_UNSIGNED
    can_conclude = is_review and alert.is_open and request.user.has_perm("patients.review_clinical", alert)
    if can_conclude and conclusion_form is None:
        conclusion_form = ReviewConclusionForm()
    context = {
        "alert": alert,
        "timeline": timeline,
        "can_act": request.user.has_perm("alerts.acknowledge", alert),
        "can_resolve": request.user.has_perm(alert.resolve_permission, alert),
        "can_record": alert.pump_id is not None and request.user.has_perm("patients.record_care", alert.pump),
        "context_template": context_template,
        "work": work,
        "is_review": is_review,
        "conclusion_form": conclusion_form if can_conclude else None,
    }
    if alert.kind == AlertKind.ORDER_UNSIGNED and alert.program_id:
        order = Program.objects.select_related("ordered_by", "entered_by", "verified_by", "pump__patient").get(
            pk=alert.program_id
        )
        context.update(
            context_template="alerts/_order_unsigned.html",
            order=order,
            can_countersign=order.awaits_countersign and patient_services.can_countersign(request.user, order),
        )
    return render(request, "alerts/alert_detail.html", context, status=status)


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
        "review_count": _review_count(user),
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


def _review_count(user) -> int | None:
    """The navigation's count for physicians: orders to countersign and open reviews (an unsigned
    order's alert counts once, as its order). None for everyone else (no badge, no query)."""
    clinic_ids = review_clinic_ids(user)
    if clinic_ids == [] or user.is_superuser:
        return None
    orders = orders_to_countersign(user, clinic_ids).count()
    return orders + open_reviews(clinic_ids).exclude(kind=AlertKind.ORDER_UNSIGNED).count()


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
