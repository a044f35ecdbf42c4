"""Read queries for pages, the API and the alert scan: scoped, a constant number of queries."""

from django.db.models import Case, IntegerField, OuterRef, Q, QuerySet, Subquery, Value, When
from django.db.models import CharField as CharFieldType

from . import depletion
from .models import Pump, RefillVisit

# Worklist order: most urgent first (DESIGN.md), then pumps with no projection yet.
URGENCY = {
    depletion.CRITICAL: 0,
    depletion.OVERDUE: 1,
    depletion.DUE_SOON: 2,
    depletion.STOPPED: 3,
    depletion.OK: 4,
}
NEVER_FILLED = "never_filled"


def status_expression(now, prefix: str = "projection__"):
    """The status as SQL, from the stored projection's instants and ``now``.

    The same comparisons, in the same order, as ``depletion.status_at`` (tested against it).
    """
    return Case(
        When(**{f"{prefix}pump__isnull": True}, then=Value(NEVER_FILLED)),
        When(**{f"{prefix}is_stopped": True}, then=Value(depletion.STOPPED)),
        When(**{f"{prefix}critical_from__lte": now}, then=Value(depletion.CRITICAL)),
        When(**{f"{prefix}overdue_from__lte": now}, then=Value(depletion.OVERDUE)),
        When(**{f"{prefix}due_soon_from__lte": now}, then=Value(depletion.DUE_SOON)),
        default=Value(depletion.OK),
        output_field=CharFieldType(),
    )


def urgency_expression(now, prefix: str = "projection__"):
    return Case(
        When(**{f"{prefix}pump__isnull": True}, then=Value(len(URGENCY))),
        When(**{f"{prefix}is_stopped": True}, then=Value(URGENCY[depletion.STOPPED])),
        When(**{f"{prefix}critical_from__lte": now}, then=Value(URGENCY[depletion.CRITICAL])),
        When(**{f"{prefix}overdue_from__lte": now}, then=Value(URGENCY[depletion.OVERDUE])),
        When(**{f"{prefix}due_soon_from__lte": now}, then=Value(URGENCY[depletion.DUE_SOON])),
        default=Value(URGENCY[depletion.OK]),
        output_field=IntegerField(),
    )


def with_status(queryset: QuerySet, now) -> QuerySet:
    """Annotate pumps with ``refill_status`` and ``urgency`` (0 = most urgent) at ``now``."""
    return queryset.annotate(refill_status=status_expression(now), urgency=urgency_expression(now))


def pumps_with_status(queryset: QuerySet, status: str, now) -> QuerySet:
    """Pumps whose status at ``now`` is ``status``, as an indexable filter (no annotation)."""
    p = "projection__"
    not_stopped = Q(**{f"{p}is_stopped": False})
    if status == depletion.STOPPED:
        return queryset.filter(**{f"{p}is_stopped": True})
    if status == depletion.CRITICAL:
        return queryset.filter(not_stopped, **{f"{p}critical_from__lte": now})
    if status == depletion.OVERDUE:
        return queryset.filter(not_stopped, **{f"{p}overdue_from__lte": now, f"{p}critical_from__gt": now})
    if status == depletion.DUE_SOON:
        return queryset.filter(
            not_stopped,
            **{f"{p}due_soon_from__lte": now, f"{p}overdue_from__gt": now, f"{p}critical_from__gt": now},
        )
    if status == depletion.OK:
        return queryset.filter(not_stopped, **{f"{p}due_soon_from__gt": now, f"{p}critical_from__gt": now})
    raise ValueError(f"unknown status {status!r}")


def pumps_for_list(user):
    """The user's clinics' pumps with patient, model and last refill time in one query."""
    last_refill = RefillVisit.objects.filter(pump=OuterRef("pk")).order_by("-performed_at").values("performed_at")[:1]
    return (
        Pump.objects.for_user(user)
        .select_related("patient", "patient__clinic", "pump_model", "assigned_nurse", "projection")
        .annotate(last_refill_at=Subquery(last_refill))
        .order_by("patient__family_name", "patient__given_name", "id")
    )
