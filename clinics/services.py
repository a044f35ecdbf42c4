"""Writes on clinics and staff, one function each, one transaction each (as patients/services.py).

A refusal raises ``django.core.exceptions.ValidationError`` with a message per field and stores
nothing. Permission checks belong to the caller (the API view or page).
"""

from __future__ import annotations

import hashlib
import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from .models import CalendarFeed, Clinic, Membership, Role

TAKEN = "A user with this username already exists."
LAST_ADMIN = "The clinic would have no active administrator left: make someone else its administrator first."


@transaction.atomic
def create_clinic(*, actor, **fields) -> Clinic:
    clinic = Clinic(**fields)
    clinic.full_clean()
    clinic._history_user = actor
    clinic.save()
    return clinic


@transaction.atomic
def create_staff(*, actor, clinic: Clinic, role: str, username: str, password: str, email: str = "") -> Membership:
    """A new user with a membership of ``clinic`` in ``role``; the password must pass the
    project's password validators."""
    User = get_user_model()
    errors: dict[str, list[str]] = {}
    if User.objects.filter(username__iexact=username).exists():
        errors["username"] = [TAKEN]
    if role not in Role.values:
        errors["role"] = [f"Choose one of: {', '.join(Role.values)}."]
    user = User(username=username, email=email)
    try:
        validate_password(password, user=user)
    except ValidationError as exc:
        errors["password"] = exc.messages
    if errors:
        raise ValidationError(errors)
    user.set_password(password)
    try:
        # Two requests racing for one username: the database's unique index decides.
        with transaction.atomic():
            user.save()
    except IntegrityError:
        raise ValidationError({"username": [TAKEN]}) from None
    membership = Membership(user=user, clinic=clinic, role=role)
    membership._history_user = actor
    membership.save()
    return membership


def _leaves_no_admin(membership: Membership, role: str, is_active: bool) -> bool:
    """Would this change leave the clinic without an active administrator?"""
    stays_admin = is_active and role == Role.CLINIC_ADMIN
    was_admin = membership.is_active and membership.role == Role.CLINIC_ADMIN
    if stays_admin or not was_admin:
        return False
    others = Membership.objects.active().filter(clinic_id=membership.clinic_id, role=Role.CLINIC_ADMIN)
    return not others.exclude(pk=membership.pk).exists()


@transaction.atomic
def update_membership(membership: Membership, actor, **fields) -> Membership:
    """Change a membership with its history naming ``actor``; never leave a clinic without an admin."""
    # The clinic row is the lock: two admins demoting each other at once are taken one at a time.
    Clinic.objects.select_for_update().filter(pk=membership.clinic_id).first()
    current = Membership.objects.select_for_update().get(pk=membership.pk)
    role = fields.get("role", current.role)
    is_active = fields.get("is_active", current.is_active)
    if _leaves_no_admin(current, role, is_active):
        raise ValidationError({"role" if "role" in fields else "is_active": LAST_ADMIN})
    for name, value in fields.items():
        setattr(current, name, value)
    current.full_clean()
    current._history_user = actor
    current.save()
    return current


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@transaction.atomic
def issue_calendar_feed(*, user, now=None) -> str:
    """A new private feed token for ``user`` (their earlier ones stop working); returns the raw
    token, which is not stored and cannot be shown again."""
    now = now or timezone.now()
    CalendarFeed.objects.filter(user=user, revoked_at__isnull=True).update(revoked_at=now)
    token = secrets.token_urlsafe(32)
    CalendarFeed.objects.create(user=user, token_hash=_token_hash(token))
    return token


def revoke_calendar_feeds(*, user, now=None) -> int:
    return CalendarFeed.objects.filter(user=user, revoked_at__isnull=True).update(revoked_at=now or timezone.now())


def calendar_feed_user(token: str, *, now=None):
    """The active user whose live feed ``token`` is, or None (revoked, unknown, deactivated)."""
    feed = (
        CalendarFeed.objects.select_related("user")
        .filter(token_hash=_token_hash(token), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if feed is None:
        return None
    CalendarFeed.objects.filter(pk=feed.pk).update(last_fetched_at=now or timezone.now())
    return feed.user
