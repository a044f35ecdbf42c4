"""API serializers for clinics and staff, and the field types every API serializer shares.

The API's conventions (DESIGN.md "API contract (v1)") live in these fields: times are taken only
with an offset and given in the clinic's zone, decimals stay decimals, booleans are JSON booleans,
and an id the user may not see is refused as if it did not exist.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from zoneinfo import ZoneInfo

from django.contrib.auth import get_user_model
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.db.models import Model, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework import serializers

from .access import clinic_ids_for
from .models import Clinic, Role

UTC = dt.UTC
# Clinical times outside this range are typing slips (and would overflow zone conversions).
EARLIEST_YEAR = 1900
LATEST_YEAR = 2199

# The zone the times of the object being serialized are shown in (set per object, see ClinicZoneMixin).
_display_zone: ContextVar[ZoneInfo | None] = ContextVar("itb_api_display_zone", default=None)


class AwareDateTimeField(serializers.DateTimeField):
    """ISO 8601 with a UTC offset in (a time without one is refused, never guessed); the
    clinic's zone out."""

    default_error_messages = {
        "naive": "Give the time with its UTC offset (for example 2026-01-05T09:00:00-07:00): "
        "a clinical time is never guessed.",
        "implausible": f"Give a time between {EARLIEST_YEAR} and {LATEST_YEAR}.",
    }

    def to_internal_value(self, value):
        if isinstance(value, str):
            try:
                parsed = parse_datetime(value.strip())
            except ValueError:
                parsed = None
            if parsed is not None and timezone.is_naive(parsed):
                self.fail("naive")
            if parsed is not None:
                value = parsed
        elif isinstance(value, dt.datetime) and timezone.is_naive(value):
            self.fail("naive")
        if isinstance(value, dt.datetime) and not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
            self.fail("implausible")
        return super().to_internal_value(value)

    def to_representation(self, value):
        if value is None:
            return None
        return value.astimezone(_display_zone.get() or UTC).isoformat()


class PlausibleDateField(serializers.DateField):
    """A YYYY-MM-DD date within the years a clinical record can hold."""

    default_error_messages = {"implausible": f"Give a date between {EARLIEST_YEAR} and {LATEST_YEAR}."}

    def to_internal_value(self, value):
        value = super().to_internal_value(value)
        if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
            self.fail("implausible")
        return value


class StrictBooleanField(serializers.BooleanField):
    """Only JSON true or false: a confirmation is never read into "yes", "1" or "on"."""

    default_error_messages = {"invalid": "Must be true or false."}

    def to_internal_value(self, data):
        if data is True or data is False:
            return data
        self.fail("invalid")


class ScopedPrimaryKeyRelatedField(serializers.PrimaryKeyRelatedField):
    """An id looked up in ``scoped(context)`` only: another clinic's object is refused on this
    field exactly as a missing one is (DESIGN.md: 400 "as if it did not exist")."""

    def __init__(self, model: type[Model], scoped: Callable[[Mapping], QuerySet], **kwargs):
        self.scoped = scoped
        # The empty queryset only tells the schema generator the model; lookups use get_queryset().
        kwargs.setdefault("queryset", model._default_manager.none())
        super().__init__(**kwargs)

    def get_queryset(self):
        if "request" not in self.context:
            return self.queryset
        return self.scoped(self.context)


def request_user(context: Mapping):
    return context["request"].user


def users_clinics(context: Mapping) -> QuerySet:
    return Clinic.objects.for_user(request_user(context))


def clinic_staff(context: Mapping) -> QuerySet:
    """Active staff of the clinic in ``context["clinic_id"]`` (when the target is known), else of
    the user's clinics."""
    user_model = get_user_model()
    clinic_id = context.get("clinic_id")
    if clinic_id is not None:
        clinic_ids = [clinic_id]
    else:
        clinic_ids = clinic_ids_for(request_user(context))
        if clinic_ids is None:
            return user_model.objects.filter(is_active=True, memberships__is_active=True).distinct()
    return user_model.objects.filter(
        is_active=True, memberships__clinic__in=clinic_ids, memberships__is_active=True
    ).distinct()


class StrictInputMixin:
    """Refuses keys the serializer does not know: a mistyped optional field (``drug_expiry`` for
    ``drug_expires_on``) must not be dropped without a word. ``ignored_keys`` lists read-only keys a
    client may send back unchanged."""

    ignored_keys: frozenset[str] = frozenset()

    def to_internal_value(self, data):
        unknown = []
        if isinstance(data, Mapping):
            unknown = sorted(set(data) - set(self.fields) - set(self.ignored_keys))
        errors = {}
        value = None
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if not isinstance(exc.detail, Mapping):
                raise
            errors.update(exc.detail)
        for key in unknown:
            errors[key] = ["This field is not accepted here."]
        if errors:
            raise serializers.ValidationError(errors)
        return value


class ClinicZoneMixin:
    """Shows the object's times in its clinic's zone (DESIGN.md: responses give times in the
    clinic's zone). A nested object keeps the zone of the one it is part of."""

    def clinic_zone(self, instance) -> ZoneInfo:
        raise NotImplementedError

    def to_representation(self, instance):
        if _display_zone.get() is not None:
            return super().to_representation(instance)
        token = _display_zone.set(self.clinic_zone(instance))
        try:
            return super().to_representation(instance)
        finally:
            _display_zone.reset(token)


# --- clinics and staff ----------------------------------------------------------------------


# Entries of the system's zone database that name no place: "localtime" is the server's own zone.
NOT_A_PLACE = frozenset({"localtime", "posixrules", "Factory"})


class ClinicSerializer(StrictInputMixin, serializers.ModelSerializer):
    """A clinic and the settings its projections use."""

    class Meta:
        model = Clinic
        fields = [
            "id",
            "name",
            "timezone",
            "refill_margin_days",
            "overinfusion_allowance_pct",
            "reminder_days",
            "dose_change_limit_pct",
        ]

    def validate_timezone(self, value):
        if value in NOT_A_PLACE:
            raise serializers.ValidationError("Give the clinic's time zone by place (for example America/Phoenix).")
        return value


class StaffCreateSerializer(StrictInputMixin, serializers.Serializer):
    """A new member of staff; the password must pass the password rules."""

    username = serializers.CharField(max_length=150, validators=[UnicodeUsernameValidator()])
    password = serializers.CharField(
        max_length=128, write_only=True, trim_whitespace=False, style={"input_type": "password"}
    )
    email = serializers.EmailField(max_length=254)
    clinic = ScopedPrimaryKeyRelatedField(Clinic, users_clinics)
    role = serializers.ChoiceField(choices=Role.choices)


class StaffMemberSerializer(serializers.Serializer):
    """A member of staff as created: the user's id, username and email, with the membership."""

    id = serializers.IntegerField(source="user.id", read_only=True)
    username = serializers.CharField(source="user.username", read_only=True)
    email = serializers.EmailField(source="user.email", read_only=True)
    clinic = serializers.IntegerField(source="clinic_id", read_only=True)
    role = serializers.ChoiceField(choices=Role.choices, read_only=True)


class TokenRequestSerializer(StrictInputMixin, serializers.Serializer):
    """A username and password to exchange for a token."""

    username = serializers.CharField(max_length=150)
    password = serializers.CharField(
        max_length=128, write_only=True, trim_whitespace=False, style={"input_type": "password"}
    )


class TokenSerializer(serializers.Serializer):
    """An API token (send it as ``Authorization: Token <token>``) and when it expires."""

    token = serializers.CharField(read_only=True)
    expiry = serializers.DateTimeField(read_only=True)
