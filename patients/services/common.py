"""Shared pieces of the services: the refusal, the acting user, clock and unit helpers."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from django.core.exceptions import ValidationError
from django.utils import timezone

from clinics.system import get_system_user

CLOCK_SKEW = timedelta(minutes=5)
ZERO = Decimal("0")
HUNDRED = Decimal("100")
CENT = Decimal("0.01")
DEFAULT_MAX_DAYS_IN_PUMP = 180
CONSTANT_FLOW_DOSE_TOLERANCE = Decimal("0.05")


class Refusal(ValidationError):
    """A write refused by a clinical rule: ``{field: [message, …]}``."""


def _refuse(errors: dict[str, str | list[str]]):
    raise Refusal({field: msg if isinstance(msg, list) else [msg] for field, msg in errors.items()})


def _actor(user):
    return user if user is not None else get_system_user()


def _save(instance, actor, **kwargs):
    """Save so that the history row names ``actor``."""
    instance._history_user = _actor(actor)
    instance.save(**kwargs)
    return instance


def _now(now: datetime | None) -> datetime:
    return now if now is not None else timezone.now()


def _require_aware(field: str, value: datetime | None, errors: dict):
    if value is not None and timezone.is_naive(value):
        errors[field] = "Give the time with its UTC offset: a clinical time is never guessed."


def _ml(value: Decimal) -> str:
    return f"{value.quantize(CENT)} mL"


def _q2(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_EVEN)


def _text_errors(model, errors: dict, **texts) -> None:
    """Free text longer than its field allows (notes 2,000 characters, reasons 500, a CharField its
    ``max_length``), as an error on each field named; only the values given are checked, so text
    stored before the limits existed never blocks another change."""
    for name, value in texts.items():
        if not value or name in errors:
            continue
        try:
            model._meta.get_field(name).run_validators(value)
        except ValidationError as exc:
            errors[name] = exc.messages


def _full_clean(instance, exclude=None):
    try:
        instance.full_clean(exclude=exclude)
    except ValidationError as exc:
        raise Refusal(exc.message_dict) from None


def _pumps_of(queryset):
    return queryset.select_related("pump_model", "patient", "patient__clinic")


def _lock_pump(pk):
    """The pump row, locked until the transaction ends, with its model, patient and clinic.

    ``of=("self",)``: PostgreSQL's ``FOR UPDATE`` over the joins would lock the pump-model,
    patient and clinic rows too, so every care write on pumps of the same model would queue
    behind the others, across clinics. Only the pump is locked."""
    from ..models import Pump

    return _pumps_of(Pump.objects.select_for_update(of=("self",))).get(pk=pk)
