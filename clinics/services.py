"""Writes on clinics and staff, one function each, one transaction each (as the patients/services package).

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

from . import rota
from .models import CalendarFeed, Clinic, Membership, Role, RotaOverride, Rotation

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
    was_active = current.is_active
    for name, value in fields.items():
        setattr(current, name, value)
    current.full_clean()
    current._history_user = actor
    current.save()
    if current.is_active != was_active:
        _rota_changed(current.clinic, timezone.now())  # their turns on a rota are now (or no longer) a gap
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


# --- on-call rota -------------------------------------------------------------------------------

DEFAULT_ROTATIONS = ((Role.NURSE, "On-call nurse"), (Role.PHYSICIAN, "On-call physician"))


def _rota_changed(clinic, now):
    from .signals import rota_changed

    rota_changed.send(sender=Rotation, clinic=clinic, now=now)


def ensure_default_rotations(clinic, *, now=None) -> list[Rotation]:
    """The clinic's on-call nurse and on-call physician rotations (created empty when missing:
    an empty rotation puts nobody on call, as a clinic with no on-call flag had)."""
    today = (now or timezone.now()).astimezone(clinic.zone).date()
    rotations = []
    for role, name in DEFAULT_ROTATIONS:
        rotation = Rotation.objects.filter(clinic=clinic, role=role).order_by("pk").first()
        if rotation is None:
            rotation = Rotation.objects.create(
                clinic=clinic,
                name=name,
                role=role,
                handover_weekday=0,
                starts_on=rota.last_weekday_on_or_before(today, 0),
            )
        rotations.append(rotation)
    return rotations


@transaction.atomic
def save_rotation(
    *,
    actor,
    clinic: Clinic,
    rotation: Rotation | None = None,
    name: str,
    role: str,
    member_ids: list[int],
    handover_weekday: int,
    handover_time,
    length_days: int,
    starts_on,
    now=None,
) -> Rotation:
    """Create or change a rotation: members (active memberships of the clinic, each once) in turn order."""
    now = now or timezone.now()
    Clinic.objects.select_for_update().filter(pk=clinic.pk).first()  # one rota editor per clinic at a time
    errors: dict[str, list[str]] = {}
    member_ids = [int(pk) for pk in member_ids]
    if len(set(member_ids)) != len(member_ids):
        errors["member_ids"] = ["Each member takes one turn: list them once."]
    known = set(Membership.objects.active().filter(clinic=clinic, pk__in=member_ids).values_list("pk", flat=True))
    if set(member_ids) - known:
        errors.setdefault("member_ids", []).append("Only active staff of this clinic can be on its rota.")
    if (
        Rotation.objects.filter(clinic=clinic, name__iexact=name.strip())
        .exclude(pk=getattr(rotation, "pk", None))
        .exists()
    ):
        errors["name"] = ["This clinic already has a rotation of this name."]
    if rotation is None:
        rotation = Rotation(clinic=clinic)
    elif rotation.clinic_id != clinic.pk:
        raise ValidationError({"rotation": "Not a rotation of this clinic."})
    else:
        rotation = Rotation.objects.select_for_update().get(pk=rotation.pk)
    rotation.name = name.strip()
    rotation.role = role
    rotation.member_ids = member_ids
    rotation.handover_weekday = handover_weekday
    rotation.handover_time = handover_time
    rotation.length_days = length_days
    rotation.starts_on = starts_on
    try:
        rotation.full_clean(exclude=["clinic"])
    except ValidationError as exc:
        for field_name, messages in exc.message_dict.items():
            errors.setdefault(field_name, []).extend(messages)
    if errors:
        raise ValidationError(errors)
    rotation._history_user = actor
    rotation.save()
    _rota_changed(clinic, now)
    return rotation


@transaction.atomic
def add_rota_override(
    *, actor, rotation: Rotation, membership: Membership, starts_at, ends_at, reason: str = "", now=None
) -> RotaOverride:
    """Put ``membership`` on call instead of the rotation from ``starts_at`` to ``ends_at``."""
    now = now or timezone.now()
    errors: dict[str, str] = {}
    if membership.clinic_id != rotation.clinic_id or not membership.is_active or not membership.user.is_active:
        errors["membership"] = "Only active staff of this clinic can cover its rota."
    if starts_at is None or starts_at.tzinfo is None:
        errors["starts_at"] = "Give the start with its time zone."
    if ends_at is None or ends_at.tzinfo is None:
        errors["ends_at"] = "Give the end with its time zone."
    elif starts_at is not None and ends_at <= starts_at:
        errors["ends_at"] = "The cover must end after it starts."
    elif ends_at <= now:
        errors["ends_at"] = "This period is already over."
    if errors:
        raise ValidationError(errors)
    override = RotaOverride(
        rotation=rotation, membership=membership, starts_at=starts_at, ends_at=ends_at, reason=reason.strip()
    )
    override.full_clean()
    override._history_user = actor
    override.save()
    _rota_changed(rotation.clinic, now)
    return override


@transaction.atomic
def remove_rota_override(*, actor, override: RotaOverride, now=None) -> None:
    """Remove an override (its history row keeps who had it and who removed it)."""
    now = now or timezone.now()
    clinic = override.rotation.clinic
    override._history_user = actor
    override.delete()
    _rota_changed(clinic, now)
