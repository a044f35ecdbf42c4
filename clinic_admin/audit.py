"""Audit reads for clinic administrators: the refill-visit report and its CSV export, each
record's change history as readable diffs, and the access log.

Every query here is scoped to one clinic (the caller has looked the clinic up through the
user's scope and checked ``clinics.audit``) and runs a fixed number of queries whatever the
number of rows. Nothing here writes except the export's access-log row (``log_export``).
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.apps import apps
from django.contrib.auth import get_user_model
from django.db.models import Model, Prefetch, Q, QuerySet

from alerts.models import ReviewConclusion
from clinics.access import log_access
from clinics.models import AccessLog, Clinic, Membership
from patients.models import RefillVisit

from .forms import SETTING_LABELS, describe_dates, person


def start_of_day(day: date, zone) -> datetime:
    """The first instant of ``day`` in the clinic's zone (filters take the clinic's dates)."""
    return datetime.combine(day, time.min, tzinfo=zone)


def _in_dates(queryset: QuerySet, field: str, zone, date_from: date | None, date_to: date | None) -> QuerySet:
    if date_from:
        queryset = queryset.filter(**{f"{field}__gte": start_of_day(date_from, zone)})
    if date_to:
        queryset = queryset.filter(**{f"{field}__lt": start_of_day(date_to + timedelta(days=1), zone)})
    return queryset


# --- the refill-visit report --------------------------------------------------------------------


def refill_visits(
    clinic: Clinic,
    *,
    date_from: date | None = None,
    date_to: date | None = None,
    nurse=None,
    pump=None,
    discrepancy: bool = False,
    amended: bool = False,
) -> QuerySet:
    """The clinic's refill visits, newest first, with everything a row shows in the same query."""
    visits = (
        RefillVisit.objects.filter(pump__patient__clinic=clinic)
        .select_related("pump__patient", "pump__pump_model", "performed_by", "drug_product", "program")
        .prefetch_related(
            # A physician's conclusion of the refill's review (one query for the whole page).
            Prefetch(
                "review_conclusions",
                queryset=ReviewConclusion.objects.select_related("concluded_by").order_by("concluded_at", "id"),
            )
        )
    )
    visits = _in_dates(visits, "performed_at", clinic.zone, date_from, date_to)
    if nurse is not None:
        visits = visits.filter(performed_by=nurse)
    if pump is not None:
        visits = visits.filter(pump=pump)
    if discrepancy:
        visits = visits.filter(discrepancy=True)
    if amended:
        visits = visits.filter(amended_at__isnull=False)
    return visits.order_by("-performed_at", "-id")


def describe_refill_filter(filters: dict) -> str:
    """The filter in words, for the access log and the page: "2026-01-01 to 2026-01-31; …"."""
    parts = [describe_dates(filters.get("date_from"), filters.get("date_to"))]
    if filters.get("nurse"):
        parts.append(f"performed by {filters['nurse'].username}")
    if filters.get("pump"):
        parts.append(f"pump {filters['pump'].reference}")
    if filters.get("discrepancy"):
        parts.append("discrepancies only")
    if filters.get("amended"):
        parts.append("amended only")
    return "; ".join(parts)


CSV_COLUMNS = (
    "visit_id",
    "performed_at",
    "pump",
    "pump_model",
    "serial_number",
    "patient_mrn",
    "patient_family_name",
    "patient_given_name",
    "performed_by",
    "performed_elsewhere",
    "expected_residual_ml",
    "aspirated_ml",
    "volume_added_ml",
    "reservoir_ml",
    "drug_product",
    "concentration_mcg_per_ml",
    "drug_lot",
    "drug_expires_on",
    "daily_dose_mcg",
    "bolus_mcg_per_day",
    "discrepancy",
    "discrepancy_reason",
    "notes",
    "amended_at",
    "amend_reason",
    "review_outcome",
    "review_action",
    "review_note",
    "review_follow_up_on",
    "reviewed_by",
    "reviewed_at",
)

# A cell starting with one of these is a formula to a spreadsheet ("=HYPERLINK(…)" in a note).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value)
    if isinstance(value, str) and text.startswith(_FORMULA_STARTS):
        return "'" + text
    return text


def refill_row(visit, zone) -> list[str]:
    pump, patient, program = visit.pump, visit.pump.patient, visit.program

    def local(moment):
        return moment.astimezone(zone).isoformat(timespec="minutes") if moment else None

    values = [
        visit.pk,
        local(visit.performed_at),
        pump.reference,
        str(pump.pump_model),
        pump.serial_number,
        patient.mrn,
        patient.family_name,
        patient.given_name,
        visit.performed_by.username if visit.performed_by else None,
        visit.performed_elsewhere,
        visit.expected_residual_ml,
        visit.aspirated_ml,
        visit.volume_added_ml,
        visit.reservoir_ml,
        str(visit.drug_product) if visit.drug_product else None,
        visit.concentration_mcg_per_ml,
        visit.drug_lot,
        visit.drug_expires_on.isoformat() if visit.drug_expires_on else None,
        program.daily_dose_mcg,
        program.bolus_mcg_per_day,
        visit.discrepancy,
        visit.discrepancy_reason,
        visit.notes,
        local(visit.amended_at),
        visit.amend_reason,
        *_review_cells(visit, local),
    ]
    return [csv_safe(v) for v in values]


def _review_cells(visit, local) -> list[str | None]:
    """The physician's conclusion(s) of the refill's review; two reviews of one refill (a
    discrepancy and an empty reservoir) are joined with " | "."""
    conclusions = list(visit.review_conclusions.all())
    if not conclusions:
        return [None] * 6
    columns = [
        [c.get_outcome_display() for c in conclusions],
        [c.get_action_display() for c in conclusions],
        [c.note for c in conclusions],
        [c.follow_up_on.isoformat() if c.follow_up_on else "" for c in conclusions],
        [person(c.concluded_by) for c in conclusions],
        [local(c.concluded_at) for c in conclusions],
    ]
    return [" | ".join(values) for values in columns]


class _Echo:
    """A file-like object whose ``write`` returns the line: csv.writer into a streaming response."""

    def write(self, value):
        return value


def refill_csv_lines(visits: QuerySet, zone) -> Iterator[str]:
    writer = csv.writer(_Echo())
    # The byte-order mark tells spreadsheet programs the file is UTF-8 (accented names stay intact).
    yield "\ufeff" + writer.writerow(CSV_COLUMNS)
    for visit in visits.iterator(chunk_size=500):
        yield writer.writerow(refill_row(visit, zone))


def log_export(user, clinic: Clinic, filters: dict, rows: int) -> AccessLog:
    """The export's own access-log row: who took which visits out of the app."""
    detail = f"Refill visits CSV, {rows} row{'s' if rows != 1 else ''}: {describe_refill_filter(filters)}"
    return log_access(user, AccessLog.Action.EXPORT, clinic=clinic, detail=detail)


# --- the access log -------------------------------------------------------------------------

ACCOUNT_ACTIONS = [
    AccessLog.Action.SIGN_IN,
    AccessLog.Action.SIGN_OUT,
    AccessLog.Action.CODE_FAILED,
    AccessLog.Action.ENROLLED,
    AccessLog.Action.TWO_FACTOR_RESET,
    AccessLog.Action.PASSWORD_RESET,
    AccessLog.Action.PASSWORD_CHANGED,
    AccessLog.Action.SESSION_ENDED,
    AccessLog.Action.TOKEN_ENDED,
]


def access_log(
    clinic: Clinic, *, user=None, action: str = "", date_from: date | None = None, date_to: date | None = None
) -> QuerySet:
    # A member's own account events (sign-ins, enrolment, resets) belong to no clinic: each of
    # their clinics sees them.
    members = Membership.objects.filter(clinic=clinic).values("user_id")
    own_account = Q(clinic__isnull=True, action__in=ACCOUNT_ACTIONS, user__in=members)
    entries = AccessLog.objects.filter(Q(clinic=clinic) | own_account).select_related("user", "content_type")
    if user is not None:
        entries = entries.filter(user=user)
    if action:
        entries = entries.filter(action=action)
    return _in_dates(entries, "at", clinic.zone, date_from, date_to).order_by("-at", "-id")


def with_subjects(entries: Iterable[AccessLog]) -> list[AccessLog]:
    """Attach each entry's subject (a patient, a pump) with one query per kind of subject."""
    entries = list(entries)
    ids_by_type = defaultdict(set)
    for entry in entries:
        if entry.content_type_id and entry.object_id:
            ids_by_type[entry.content_type].add(entry.object_id)
    found = {}
    for content_type, ids in ids_by_type.items():
        model = content_type.model_class()
        if model is None:
            continue
        for pk, obj in model._default_manager.in_bulk(ids).items():
            found[(content_type.pk, pk)] = obj
    for entry in entries:
        entry.subject_object = found.get((entry.content_type_id, entry.object_id))
        entry.subject_kind = history_key_for(entry.subject_object)
    return entries


# --- change history ------------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryKind:
    """A record kind whose history administrators read: its model and the path to its clinic."""

    key: str
    model_label: str
    clinic_path: str
    title: str

    @property
    def model(self) -> type[Model]:
        return apps.get_model(self.model_label)


HISTORY_KINDS = {
    kind.key: kind
    for kind in (
        HistoryKind("refill", "patients.RefillVisit", "pump__patient__clinic", "Refill visit"),
        HistoryKind("patient", "patients.Patient", "clinic", "Patient"),
        HistoryKind("pump", "patients.Pump", "patient__clinic", "Pump"),
        HistoryKind("program", "patients.Program", "pump__patient__clinic", "Dose program"),
        HistoryKind("appointment", "patients.Appointment", "pump__patient__clinic", "Appointment"),
        HistoryKind("event", "patients.PumpEvent", "pump__patient__clinic", "Pump event"),
        HistoryKind("clinic", "clinics.Clinic", "pk", "Clinic settings"),
        HistoryKind("membership", "clinics.Membership", "clinic", "Staff membership"),
        HistoryKind("policy", "alerts.EscalationPolicy", "clinic", "Escalation policy"),
        HistoryKind("webhook", "alerts.Webhook", "clinic", "Webhook"),
        HistoryKind("rotation", "clinics.Rotation", "clinic", "On-call rota"),
    )
}
# History of a record that concerns a patient is a read of that patient's record (access log).
PATIENT_RECORD_KINDS = {"refill", "patient", "pump", "program", "appointment", "event"}


_KEY_BY_LABEL = {kind.model_label: kind.key for kind in HISTORY_KINDS.values()}


def history_key_for(obj) -> str | None:
    """The history page's key for a record (None when administrators have no history page for it)."""
    return _KEY_BY_LABEL.get(obj._meta.label) if obj is not None else None


def history_object(kind: HistoryKind, clinic: Clinic, pk: int):
    """The record, only if it belongs to ``clinic`` (else DoesNotExist: the page answers 404)."""
    return kind.model._default_manager.filter(**{kind.clinic_path: clinic.pk}).get(pk=pk)


def describe_record(kind: HistoryKind, obj, zone) -> str:
    if kind.key == "refill":
        return f"Refill of {obj.performed_at.astimezone(zone):%Y-%m-%d %H:%M}"
    if kind.key == "program":
        return f"Dose program from {obj.effective_at.astimezone(zone):%Y-%m-%d %H:%M}"
    if kind.key == "membership":
        return f"{person(obj.user)} ({obj.user.username})"
    if kind.key == "clinic":
        return obj.name
    return str(obj)


@dataclass
class HistoryEntry:
    """One version of one record: who saved it, when, and what changed from the version before."""

    at: datetime
    user: object
    record: str
    kind: str  # created, changed, deleted
    reason: str
    changes: list[tuple[str, str, str]] = field(default_factory=list)  # (field, old, new)
    values: list[tuple[str, str]] = field(default_factory=list)  # a created record's first values


# Bookkeeping fields: their changes say nothing to an auditor.
HIDDEN_FIELDS = {"id", "created_at"}

# Units by name ending, longest first (DESIGN.md: units are in the names).
UNITS = (
    ("_mcg_per_ml", "mcg/mL"),
    ("_ml_per_day", "mL/day"),
    ("_mcg_per_day", "mcg/day"),
    ("_mcg", "mcg/day"),
    ("_ml", "mL"),
    ("_pct", "%"),
    ("_days", "days"),
    ("_hours", "hours"),
    ("_minutes", "min"),
)


def _unit(name: str) -> str:
    for ending, unit in UNITS:
        if name.endswith(ending):
            return unit
    return ""


FIELD_LABELS = {
    "repeat_count": "Repeats if nobody acknowledges",
    "realert_minutes": "Re-alert after an acknowledgement (minutes)",
    "wait_minutes": "Wait before the next level (minutes)",
    "position": "Step",
    "amend_reason": "Reason for the amendment",
}


def _label(model, model_field) -> str:
    name = model_field.name
    if model._meta.label == "clinics.Clinic" and name in SETTING_LABELS:
        return SETTING_LABELS[name]
    if name in FIELD_LABELS:
        return FIELD_LABELS[name]
    label = str(model_field.verbose_name)
    unit = _unit(name)
    if unit and unit not in label:
        if label == name.replace("_", " "):  # a label Django made from the name: drop the unit's words
            ending = next(ending for ending, _u in UNITS if name.endswith(ending))
            label = name[: -len(ending)].replace("_", " ")
        label = f"{label} ({unit})"
    return label[:1].upper() + label[1:]


class _Renderer:
    """Readable values: names for people and catalogue rows, labels for choices, local times."""

    def __init__(self, zone):
        self.zone = zone
        self.related: dict[type[Model], dict] = {}

    def collect(self, rows: Iterable, fields_by_model: dict) -> None:
        wanted = defaultdict(set)
        for row in rows:
            for f in fields_by_model[row.instance_type]:
                if f.is_relation:
                    value = getattr(row, f.attname)
                    if value is not None:
                        wanted[f.related_model].add(value)
        for model, ids in wanted.items():
            self.related[model] = model._default_manager.in_bulk(ids)

    def render(self, model_field, value) -> str:
        if value is None or value == "" or value == []:
            return "—"
        if model_field.is_relation:
            obj = self.related.get(model_field.related_model, {}).get(value)
            if obj is None:
                return f"#{value}"
            if model_field.related_model is get_user_model():
                return person(obj)
            return str(obj)
        if getattr(model_field, "choices", None):
            return str(dict(model_field.flatchoices).get(value, value))
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, datetime):
            return f"{value.astimezone(self.zone):%Y-%m-%d %H:%M}"
        if isinstance(value, date):
            return f"{value:%Y-%m-%d}"
        if isinstance(value, list | tuple):
            return ", ".join(str(v) for v in value) or "—"
        text = f"{value.normalize():f}" if isinstance(value, Decimal) and value == value.to_integral() else str(value)
        unit = _unit(model_field.name)
        return f"{text} {unit}" if unit else text


def record_history(sources: list[tuple[str, QuerySet]], zone) -> list[HistoryEntry]:
    """The full history of one or more records, newest first, as readable diffs.

    ``sources`` is a list of (label, history queryset). One query per source, plus one per kind
    of related object named in the values; consecutive versions of one record are compared with
    simple-history's ``diff_against`` (raw keys: it queries nothing).
    """
    rows_by_object = defaultdict(list)
    fields_by_model = {}
    for label, history in sources:
        model = history.model.instance_type if hasattr(history.model, "instance_type") else history.model
        fields_by_model[model] = [
            f for f in model._meta.concrete_fields if f.name not in HIDDEN_FIELDS and hasattr(history.model, f.attname)
        ]
        for row in history.select_related("history_user").order_by("history_date", "history_id"):
            rows_by_object[(model, row.id)].append((label, row))
    renderer = _Renderer(zone)
    renderer.collect((row for rows in rows_by_object.values() for _l, row in rows), fields_by_model)

    entries = []
    for (model, _pk), rows in rows_by_object.items():
        fields_by_name = {f.name: f for f in fields_by_model[model]}
        previous = None
        for label, row in rows:
            kind = {"+": "created", "~": "changed", "-": "deleted"}[row.history_type]
            entry = HistoryEntry(
                at=row.history_date,
                user=row.history_user,
                record=label,
                kind=kind,
                reason=row.history_change_reason or "",
            )
            if previous is None or kind == "created":
                entry.values = [
                    (_label(model, f), renderer.render(f, getattr(row, f.attname)))
                    for f in fields_by_model[model]
                    if getattr(row, f.attname) not in (None, "", [])
                ]
            else:
                delta = row.diff_against(previous, included_fields=list(fields_by_name))
                for change in delta.changes:
                    f = fields_by_name[change.field]
                    entry.changes.append(
                        (_label(model, f), renderer.render(f, change.old), renderer.render(f, change.new))
                    )
                if kind == "changed" and not entry.changes:
                    previous = row  # saved without a visible change (a re-save beside an amendment)
                    continue
            entries.append(entry)
            previous = row
    entries.sort(key=lambda e: e.at, reverse=True)
    return entries


def history_sources(kind: HistoryKind, obj, zone) -> list[tuple[str, QuerySet]]:
    """Whose history the record's page shows: the record's own, and what changes with it."""
    sources = [(describe_record(kind, obj, zone), obj.history.all())]
    if kind.key == "refill":
        # An amendment that corrects the dose changes the program the refill started.
        sources.append(("Dose program started by this refill", obj.program.history.all()))
    elif kind.key == "policy":
        level_history = apps.get_model("alerts", "EscalationLevel").history.filter(policy_id=obj.pk)
        sources.append(("Escalation level", level_history))
    return sources
