"""The access rules: which clinics a user belongs to, in which role, and the access log.

DESIGN.md's role table is the rule. Every clinical object exposes ``access_clinic_id``; list
queries are scoped with ``scope()`` (or a model's ``for_user()``), single objects are checked with
``rules`` permissions (see ``clinics/rules.py``), and an object outside the user's clinics is
looked up through a scoped queryset so that it answers 404, never 403.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.contenttypes.models import ContentType
from django.db.models import QuerySet

from .models import AccessLog, Membership, Role

CARE_ROLES = frozenset({Role.NURSE, Role.PHYSICIAN})
ALL_ROLES = frozenset(Role)


def roles_by_clinic(user) -> dict[int, str]:
    """{clinic_id: role} of the user's active memberships, cached on the user for the request."""
    if not user.is_authenticated or not user.is_active:
        return {}
    cached = getattr(user, "_itb_roles_by_clinic", None)
    if cached is None:
        cached = dict(Membership.objects.active().filter(user=user).values_list("clinic_id", "role"))
        user._itb_roles_by_clinic = cached
    return cached


def forget_roles(user) -> None:
    """Drop the per-request cache after memberships change."""
    user.__dict__.pop("_itb_roles_by_clinic", None)


def clinic_ids_for(user, roles=ALL_ROLES) -> list[int] | None:
    """Clinic ids the user may act in with one of ``roles``; None means every clinic (superuser)."""
    if user.is_authenticated and user.is_active and user.is_superuser:
        return None
    return [cid for cid, role in roles_by_clinic(user).items() if role in roles]


def scope(queryset: QuerySet, user, clinic_field: str = "clinic", roles=ALL_ROLES) -> QuerySet:
    """Restrict ``queryset`` to rows of the user's clinics (``clinic_field`` is the path to the clinic)."""
    ids = clinic_ids_for(user, roles)
    if ids is None:
        return queryset
    return queryset.filter(**{f"{clinic_field}__in": ids})


def role_in(user, clinic_id: int | None) -> str | None:
    return roles_by_clinic(user).get(clinic_id)


def clinic_id_of(obj) -> int | None:
    return getattr(obj, "access_clinic_id", None)


def log_access(user, action: str, obj=None, *, clinic=None, detail: str = "") -> AccessLog:
    """Append one access-log row. The one helper every page, export, feed and API read uses."""
    clinic_id = clinic.pk if clinic is not None else clinic_id_of(obj)
    return AccessLog.objects.create(
        user=user if user is not None and user.is_authenticated else None,
        clinic_id=clinic_id,
        action=action,
        content_type=ContentType.objects.get_for_model(obj) if obj is not None else None,
        object_id=obj.pk if obj is not None else None,
        detail=detail[:255],
    )


def log_list_access(user, action: str, clinic_ids: Iterable[int | None], *, detail: str) -> list[AccessLog]:
    """Log a page or API answer that lists patients: one row naming the list (``detail``) for each
    clinic whose patients it showed — so every clinic's admins see the read — written in one
    INSERT whatever the number of rows listed; nothing when it showed no patient."""
    user = user if user is not None and user.is_authenticated else None
    rows = [
        AccessLog(user=user, clinic_id=clinic_id, action=action, detail=detail[:255])
        for clinic_id in sorted({clinic_id for clinic_id in clinic_ids if clinic_id is not None})
    ]
    return AccessLog.objects.bulk_create(rows) if rows else []
