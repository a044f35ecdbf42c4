"""Writes on clinics and staff, one function each, one transaction each (as patients/services.py).

A refusal raises ``django.core.exceptions.ValidationError`` with a message per field and stores
nothing. Permission checks belong to the caller (the API view or page).
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from .models import Clinic, Membership, Role

TAKEN = "A user with this username already exists."


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
