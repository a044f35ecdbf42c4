"""Shared pieces of the services: the refusal, the acting user, clock and unit helpers."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db.models import CheckConstraint, F, Q
from django.utils import timezone
from simple_history.utils import bulk_create_with_history

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


def _bulk_create(model, objects: list, actor) -> list:
    """INSERT the rows, then their history rows ('+', naming ``actor``): two statements for up to
    BULK_BATCH rows, where saving one by one takes two a row. Foreign keys to objects stored just
    before are taken from them (bulk_create does that); no save() signals are sent."""
    user = _actor(actor)
    for obj in objects:
        obj._history_user = user
    return bulk_create_with_history(objects, model, batch_size=BULK_BATCH, default_user=user)


# Rows per INSERT: SQLite allows 32,766 parameters a statement; a refill row has about 25 columns.
BULK_BATCH = 500


def _now(now: datetime | None) -> datetime:
    return now if now is not None else timezone.now()


def _today(clinic, now: datetime) -> date:
    """``now``'s date in the clinic's zone."""
    return now.astimezone(clinic.zone).date()


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


def _full_clean(instance, exclude=None, *, unique_checked: bool = False):
    """Django's ``full_clean`` with fewer round trips, the same rules and messages: a foreign key
    whose object is attached (read from the database, or saved just before in the same write) is
    not looked up again, and a check constraint is evaluated in Python where it can be (the
    database still enforces every constraint). ``unique_checked``: the caller has checked the
    unique constraints itself against keys it read at once (an import of many rows)."""
    exclude = set(exclude or ())
    attached = {
        field.name
        for field in instance._meta.concrete_fields
        if field.many_to_one or field.one_to_one
        if field.is_cached(instance) and field.get_cached_value(instance) is not None
    }
    errors: dict = {}
    for step in (lambda: instance.clean_fields(exclude=exclude | attached), instance.clean):
        try:
            step()
        except ValidationError as exc:
            errors = exc.update_error_dict(errors)
    exclude |= set(errors)  # as full_clean: a field already refused is not checked again
    if not unique_checked:
        try:
            instance.validate_unique(exclude=exclude)
        except ValidationError as exc:
            errors = exc.update_error_dict(errors)
    for constraint in instance._meta.constraints:
        try:
            if isinstance(constraint, CheckConstraint):
                _check_constraint(constraint, instance, exclude)
            elif not unique_checked:
                constraint.validate(type(instance), instance, exclude=exclude)
        except ValidationError as exc:
            if getattr(exc, "code", None) == "unique" and len(getattr(constraint, "fields", ())) == 1:
                errors.setdefault(constraint.fields[0], []).append(exc)
            else:
                errors = exc.update_error_dict(errors)
    if errors:
        raise Refusal(ValidationError(errors).message_dict)


class _NotInPython(Exception):
    """A check constraint's condition the Python evaluation below does not cover."""


_COMPARISONS = {
    "exact": lambda a, b: a == b,
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
    "in": lambda a, b: a in b,
}


def _check_constraint(constraint: CheckConstraint, instance, exclude: set) -> None:
    """``constraint.validate`` without its query (``SELECT 1 WHERE …`` per constraint) when the
    condition is plain field comparisons; SQL's three-valued logic kept: NULL passes."""
    try:
        referenced = set()
        holds = _q_holds(constraint.condition, instance, referenced)
    except _NotInPython:
        constraint.validate(type(instance), instance, exclude=exclude)
        return
    if referenced & exclude:
        return  # as Django: a constraint on a field left out is not checked
    if holds is False:
        raise ValidationError(constraint.get_violation_error_message(), code=constraint.violation_error_code)


def _q_holds(q: Q, instance, referenced: set) -> bool | None:
    def value_of(name):
        try:
            field = instance._meta.get_field(name)
        except FieldDoesNotExist:
            raise _NotInPython from None
        if not getattr(field, "concrete", False) or field.is_relation:
            raise _NotInPython
        referenced.add(field.name)
        return getattr(instance, field.attname)

    results = []
    for child in q.children:
        if isinstance(child, Q):
            results.append(_q_holds(child, instance, referenced))
            continue
        if not isinstance(child, tuple):
            raise _NotInPython
        lookup, right = child
        name, _, operator = lookup.partition("__")
        operator = operator or "exact"
        left = value_of(name)
        if isinstance(right, F):
            right = value_of(right.name)
        elif not isinstance(right, (str, int, Decimal, date, datetime, list, tuple, set, type(None))):
            raise _NotInPython  # expressions and the like: the database evaluates them
        if operator == "isnull" or (operator == "exact" and right is None and not isinstance(child[1], F)):
            results.append((left is None) == (True if operator == "exact" else bool(right)))
        elif operator not in _COMPARISONS:
            raise _NotInPython
        elif left is None or right is None:
            results.append(None)
        else:
            results.append(_COMPARISONS[operator](left, right))
    if q.connector == Q.AND:
        result = False if False in results else (None if None in results else True)
    else:
        result = True if True in results else (None if None in results else False)
    if q.negated and result is not None:
        result = not result
    return result


def _pumps_of(queryset):
    return queryset.select_related("pump_model", "patient", "patient__clinic")


def _lock_pump(pk):
    """The pump row, locked until the transaction ends, with its model, patient and clinic.

    ``of=("self",)``: PostgreSQL's ``FOR UPDATE`` over the joins would lock the pump-model,
    patient and clinic rows too, so every care write on pumps of the same model would queue
    behind the others, across clinics. Only the pump is locked."""
    from ..models import Pump

    return _pumps_of(Pump.objects.select_for_update(of=("self",))).get(pk=pk)
