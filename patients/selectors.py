"""Read queries for pages, the API and the alert scan: scoped, a constant number of queries."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db.models import Case, Count, F, IntegerField, OuterRef, Q, QuerySet, Subquery, Value, When
from django.db.models import CharField as CharFieldType
from django.db.models.functions import Coalesce

from clinics.models import Membership, Role

from . import depletion
from .models import Appointment, DrugProduct, Program, Pump, RefillVisit

# Worklist order: most urgent first (DESIGN.md), then pumps with no projection yet.
URGENCY = {
    depletion.CRITICAL: 0,
    depletion.OVERDUE: 1,
    depletion.DUE_SOON: 2,
    depletion.STOPPED: 3,
    depletion.OK: 4,
}
NEVER_FILLED = "never_filled"
OPEN_ALERT_STATUSES = ("triggered", "acknowledged")


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


# --- urgency ranking: the one definition the worklist, its counts and the pump page share ---------

# Alert severities as alerts.models.Severity stores them (patients never imports alerts; a test
# checks these against it).
ALERT_EMERGENCY, ALERT_CRITICAL, ALERT_URGENT, ALERT_REVIEW = 40, 30, 20, 15

# Most urgent first. An open alert lifts a pump into its severity's tier (a reported low-reservoir
# MISMATCH is critical even while the dates say "overdue"); reminders lift nothing.
TIERS = (
    ("emergency", "Emergency"),
    (depletion.CRITICAL, "Critical"),
    ("urgent", "Urgent"),
    (depletion.DUE_SOON, "Due soon"),
    ("review", "Review only"),
    (depletion.STOPPED, "Stopped"),
    (depletion.OK, "OK"),
    (NEVER_FILLED, "Never filled"),
)
TIER_RANK = {key: rank for rank, (key, _label) in enumerate(TIERS)}
TIER_LABELS = dict(TIERS)


def _open_alerts_of_pump():
    # The alerting side's rows, read through the reverse relation: no import of alerts (DESIGN.md).
    alert_model = Pump._meta.get_field("alerts").related_model
    return alert_model.objects.filter(pump=OuterRef("pk"), status__in=OPEN_ALERT_STATUSES)


def with_rank(queryset: QuerySet, now) -> QuerySet:
    """Annotate pumps with ``refill_status``, their worst open alert (``worst_alert_id``,
    ``worst_alert_severity``, ``worst_alert_kind``, ``open_alerts``), their ``tier`` (a key of
    ``TIERS``) and the keys the worklist sorts by (``ranked`` gives the order)."""
    worst = _open_alerts_of_pump().order_by("-severity", "raised_at", "id")
    count = _open_alerts_of_pump().order_by().values("pump").annotate(n=Count("pk")).values("n")
    queryset = queryset.annotate(
        refill_status=status_expression(now),
        worst_alert_id=Subquery(worst.values("pk")[:1]),
        worst_alert_severity=Subquery(worst.values("severity")[:1]),
        worst_alert_kind=Subquery(worst.values("kind")[:1]),
        open_alerts=Coalesce(Subquery(count, output_field=IntegerField()), 0),
    )
    severity = "worst_alert_severity"
    tier = Case(
        When(**{f"{severity}__gte": ALERT_EMERGENCY}, then=Value("emergency")),
        When(Q(refill_status=depletion.CRITICAL) | Q(**{f"{severity}__gte": ALERT_CRITICAL}), then=Value("critical")),
        When(Q(refill_status=depletion.OVERDUE) | Q(**{f"{severity}__gte": ALERT_URGENT}), then=Value("urgent")),
        When(refill_status=depletion.DUE_SOON, then=Value(depletion.DUE_SOON)),
        When(**{severity: ALERT_REVIEW}, then=Value("review")),
        When(refill_status=depletion.STOPPED, then=Value(depletion.STOPPED)),
        When(refill_status=NEVER_FILLED, then=Value(NEVER_FILLED)),
        default=Value(depletion.OK),
        output_field=CharFieldType(),
    )
    tier_rank = Case(
        *[When(tier=key, then=Value(rank)) for key, rank in TIER_RANK.items()], output_field=IntegerField()
    )
    past_alarm = Case(
        When(Q(projection__lra_at__lte=now) | Q(projection__empty_at__lte=now), then=Value(0)),
        default=Value(1),
        output_field=IntegerField(),
    )
    withdrawal_risk = Case(
        When(
            Q(patient__sci_at_or_above_t6=True)
            | Q(patient__communication_difficulty=True)
            | Q(patient__prior_withdrawal=True),
            then=Value(0),
        ),
        default=Value(1),
        output_field=IntegerField(),
    )
    return queryset.annotate(tier=tier).annotate(
        tier_rank=tier_rank, past_alarm_rank=past_alarm, withdrawal_rank=withdrawal_risk
    )


def ranked(queryset: QuerySet, now) -> QuerySet:
    """Pumps most urgent first: by tier; within a tier, pumps already past their alarm or empty
    time, then the earliest critical-from time, then withdrawal-risk patients, then by name."""
    return with_rank(queryset, now).order_by(
        "tier_rank",
        "past_alarm_rank",
        F("projection__critical_from").asc(nulls_last=True),
        "withdrawal_rank",
        "patient__family_name",
        "patient__given_name",
        "id",
    )


def tier_counts(queryset: QuerySet, now) -> dict[str, int]:
    """How many pumps are in each tier (one aggregate query), with the same tiers as the order."""
    rows = with_rank(queryset, now).order_by().values("tier").annotate(n=Count("id"))
    return {row["tier"]: row["n"] for row in rows}


def open_alerts_of(pump):
    """The pump's open alerts, worst first (the pump page lists them with links)."""
    return pump.alerts.filter(status__in=OPEN_ALERT_STATUSES).order_by("-severity", "raised_at", "id")


def worklist(user, now, *, status: str = "", nurse_id: int | None = None, clinic_id: int | None = None, search=""):
    """The user's clinics' pumps in service, most urgent first (``ranked``), in one query whatever
    their number. ``status`` is a tier key (``TIERS``).

    Each pump carries ``refill_status``, ``tier``, its worst open alert, its patient, clinic,
    model, assigned nurse and stored projection, the stop reason of the program in effect (a
    stopped pump says why) and its next open appointment.
    """
    program_now = Program.objects.filter(pump=OuterRef("pk"), effective_at__lte=now).order_by("-effective_at", "-id")
    next_appointment = Appointment.objects.filter(pump=OuterRef("pk"), status=Appointment.Status.SCHEDULED).order_by(
        "scheduled_for", "id"
    )
    queryset = (
        Pump.objects.for_user(user)
        .in_service()
        .select_related("patient", "patient__clinic", "pump_model", "assigned_nurse", "projection")
        .annotate(
            stop_reason=Subquery(program_now.values("stop_reason")[:1]),
            next_appointment_at=Subquery(next_appointment.values("scheduled_for")[:1]),
            next_appointment_kind=Subquery(next_appointment.values("kind")[:1]),
        )
    )
    if nurse_id is not None:
        queryset = queryset.filter(assigned_nurse_id=nurse_id)
    if clinic_id is not None:
        queryset = queryset.filter(patient__clinic_id=clinic_id)
    for word in str(search).split():
        queryset = queryset.filter(
            Q(patient__family_name__icontains=word)
            | Q(patient__given_name__icontains=word)
            | Q(patient__mrn__icontains=word)
        )
    queryset = ranked(queryset, now)
    if status:
        queryset = queryset.filter(tier=status)
    return queryset


def care_staff_of(clinic_ids):
    """Active nurses and physicians of the given clinics (None: every clinic), for pickers."""
    User = get_user_model()
    memberships = Membership.objects.active().filter(role__in=[Role.NURSE, Role.PHYSICIAN])
    if clinic_ids is not None:
        memberships = memberships.filter(clinic_id__in=clinic_ids)
    return User.objects.filter(pk__in=memberships.values("user_id")).order_by("last_name", "first_name", "username")


def physicians_of(clinic_id):
    User = get_user_model()
    memberships = Membership.objects.active().filter(role=Role.PHYSICIAN, clinic_id=clinic_id)
    return User.objects.filter(pk__in=memberships.values("user_id")).order_by("last_name", "first_name", "username")


# --- the pump page ------------------------------------------------------------------------


def pumps_for_page(user):
    """The user's clinics' pumps with what a pump page shows up front (look one up: 404 outside)."""
    return Pump.objects.for_user(user).select_related(
        "patient", "patient__clinic", "pump_model", "assigned_nurse", "projection"
    )


def program_in_effect(programs, at):
    """The program in effect at ``at`` from an ordered list of the pump's programs (no query)."""
    current = None
    for program in programs:
        if program.effective_at <= at:
            current = program
    return current


@dataclass
class ChangeEntry:
    """One change of one record, for the pump page's history: who, when, what changed."""

    at: object
    user: object
    record: str
    kind: str  # created, changed, deleted
    reason: str
    changes: list  # [(field label, old, new)]


# Fields whose history says nothing to staff (bookkeeping).
_HIDDEN_HISTORY_FIELDS = {"id", "created_at", "reservoir_ml", "status_changed_at"}


def _history_value(field, value, users):
    if value is None or value == "":
        return "—"
    if field.is_relation:
        if field.related_model is get_user_model():
            user = users.get(value)
            return (user.get_full_name() or user.username) if user else f"user #{value}"
        return f"#{value}"
    if getattr(field, "choices", None):
        return dict(field.flatchoices).get(value, value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value  # the template shows it in the clinic's zone
    return str(value)


def change_history(sources, limit: int = 60) -> tuple[list[ChangeEntry], bool]:
    """The recent changes of several records, newest first, with field diffs; and whether more exist.

    ``sources`` is a list of (label, history queryset), the label a string or a function of the
    history row ("Refill 2026-01-05"). One query per source, plus one for the people named in
    the diffs: consecutive history rows of one object are compared in Python (``diff_against``
    with raw keys queries nothing).
    """
    rows_by_object = defaultdict(list)
    for label, history in sources:
        # Insertion order pairs each change with the one before it (dates can tie).
        for row in history.select_related("history_user").order_by("history_id"):
            rows_by_object[(history.model, row.id)].append((label(row) if callable(label) else label, row))
    user_ids = set()
    for rows in rows_by_object.values():
        for _label, row in rows:
            for field in row.instance_type._meta.concrete_fields:
                if field.is_relation and field.related_model is get_user_model():
                    user_ids.add(getattr(row, field.attname))
    users = get_user_model().objects.in_bulk([u for u in user_ids if u is not None])
    entries = []
    for rows in rows_by_object.values():
        previous = None
        for label, row in rows:
            meta = row.instance_type._meta
            changes = []
            if previous is not None and row.history_type == "~":
                delta = row.diff_against(previous)
                for change in delta.changes:
                    if change.field in _HIDDEN_HISTORY_FIELDS:
                        continue
                    field = meta.get_field(change.field)
                    changes.append(
                        (
                            str(field.verbose_name),
                            _history_value(field, change.old, users),
                            _history_value(field, change.new, users),
                        )
                    )
            kind = {"+": "created", "~": "changed", "-": "deleted"}[row.history_type]
            if kind == "changed" and not changes and not row.history_change_reason:
                previous = row
                continue
            entries.append(
                ChangeEntry(
                    at=row.history_date,
                    user=row.history_user,
                    record=label,
                    kind=kind,
                    reason=row.history_change_reason or "",
                    changes=changes,
                )
            )
            previous = row
    entries.sort(key=lambda e: e.at, reverse=True)
    return entries[:limit], len(entries) > limit


# --- the refill form's live preview -----------------------------------------------------------


@dataclass
class RefillPreview:
    """What a refill with the typed values would give, computed without saving anything."""

    rate_ml_per_day: Decimal
    total_mcg_per_day: Decimal
    daily_dose_mcg: Decimal
    bolus_mcg_per_day: Decimal
    concentration_mcg_per_ml: Decimal
    expected_residual_ml: Decimal | None
    tolerance_ml: Decimal | None
    out_of_tolerance: bool
    reference_dose_mcg: Decimal | None
    dose_change_pct: Decimal | None
    projection: depletion.Projection
    status: str


def preview_refill(
    pump: Pump,
    *,
    performed_at,
    aspirated_ml: Decimal | None,
    volume_added_ml: Decimal,
    concentration_mcg_per_ml: Decimal,
    daily_dose_mcg: Decimal | None,
    bolus_mcg_per_day: Decimal = Decimal("0"),
    drug_product: DrugProduct | None = None,
    drug_expires_on=None,
    now,
    reference_programs=None,
) -> RefillPreview:
    """The projection a refill would start, with the same depletion functions and the same
    inputs as ``services.record_refill`` (expected residual, delivery samples, margins), on
    unsaved objects: nothing is written. The service stays the judge of the rules on save."""
    # Imported here: services imports this module's neighbours, not the other way round.
    from . import services

    # The service's rules, with its refusals ignored here: the preview shows, the save judges.
    daily_dose_mcg = services.constant_flow_dose(pump, concentration_mcg_per_ml, daily_dose_mcg, {})
    daily_dose_mcg = daily_dose_mcg if daily_dose_mcg is not None else Decimal("0")
    if pump.pk is None:
        # A pump being implanted (the first fill's preview): no record yet.
        earlier_refills, earlier_programs = [], []
    else:
        earlier_refills = list(
            pump.refills.filter(performed_at__lt=performed_at).select_related("drug_product").order_by("performed_at")
        )
        earlier_programs = list(pump.programs.filter(effective_at__lt=performed_at).order_by("effective_at", "id"))
    previous = earlier_refills[-1] if earlier_refills else None

    expected, tolerance, out_of_tolerance = services.residual_check(
        pump, previous, earlier_programs, performed_at, aspirated_ml
    )

    program = Program(
        pump=pump,
        effective_at=performed_at,
        concentration_mcg_per_ml=concentration_mcg_per_ml,
        daily_dose_mcg=daily_dose_mcg,
        bolus_mcg_per_day=bolus_mcg_per_day,
    )
    refill = RefillVisit(
        pump=pump,
        performed_at=performed_at,
        aspirated_ml=aspirated_ml if aspirated_ml is not None else Decimal("0"),
        volume_added_ml=volume_added_ml,
        drug_product=drug_product,
        concentration_mcg_per_ml=concentration_mcg_per_ml,
        drug_expires_on=drug_expires_on,
        discrepancy=out_of_tolerance,
    )
    at = max(now, performed_at)
    projection, fill = services.project_record(pump, [*earlier_refills, refill], [*earlier_programs, program], at)
    # A replacement pump's first dose is compared with the old pump's last (``reference_programs``).
    reference = services.last_nonzero_dose(earlier_programs if reference_programs is None else reference_programs)
    change_pct = services.dose_change_pct(daily_dose_mcg, reference)
    if change_pct is not None:
        change_pct = change_pct.quantize(Decimal("1"))
    return RefillPreview(
        rate_ml_per_day=fill.segments[0].rate_ml_per_day if fill.segments else Decimal("0"),
        total_mcg_per_day=daily_dose_mcg + bolus_mcg_per_day,
        daily_dose_mcg=daily_dose_mcg,
        bolus_mcg_per_day=bolus_mcg_per_day,
        concentration_mcg_per_ml=concentration_mcg_per_ml,
        expected_residual_ml=expected,
        tolerance_ml=tolerance,
        out_of_tolerance=out_of_tolerance,
        reference_dose_mcg=reference,
        dose_change_pct=change_pct,
        projection=projection,
        status=projection.status(at),
    )


@dataclass
class ProgramPreview:
    """What a dose change between refills would give: the new rate and the new projection."""

    rate_ml_per_day: Decimal
    total_mcg_per_day: Decimal
    daily_dose_mcg: Decimal
    reference_dose_mcg: Decimal | None
    dose_change_pct: Decimal | None
    concentration_mcg_per_ml: Decimal
    projection: depletion.Projection
    current: depletion.Projection | None
    status: str


def preview_program_change(
    pump: Pump, *, effective_at, daily_dose_mcg: Decimal, bolus_mcg_per_day: Decimal, now
) -> ProgramPreview | None:
    """The projection after a program change, on an unsaved program (nothing is written); None
    when the pump was never filled (``services.change_program`` refuses that)."""
    from . import services

    refills = list(pump.refills.select_related("drug_product").order_by("performed_at"))
    if not refills or effective_at < refills[-1].performed_at:
        return None
    programs = list(pump.programs.order_by("effective_at", "id"))
    earlier = [p for p in programs if p.effective_at <= effective_at]
    program = Program(
        pump=pump,
        effective_at=effective_at,
        concentration_mcg_per_ml=refills[-1].concentration_mcg_per_ml,
        daily_dose_mcg=daily_dose_mcg,
        bolus_mcg_per_day=bolus_mcg_per_day,
    )
    at = max(now, effective_at)
    current, _ = services.project_record(pump, refills, programs, at)
    projection, _fill = services.project_record(pump, refills, [*programs, program], at)
    reference = services.last_nonzero_dose(earlier)
    change_pct = services.dose_change_pct(daily_dose_mcg, reference)
    return ProgramPreview(
        rate_ml_per_day=program.rate_ml_per_day,
        total_mcg_per_day=daily_dose_mcg + bolus_mcg_per_day,
        daily_dose_mcg=daily_dose_mcg,
        reference_dose_mcg=reference,
        dose_change_pct=None if change_pct is None else change_pct.quantize(Decimal("1")),
        concentration_mcg_per_ml=program.concentration_mcg_per_ml,
        projection=projection,
        current=current,
        status=projection.status(at),
    )


# --- delivery per refill interval (the drift review) -------------------------------------------


@dataclass
class DeliveryInterval:
    """One refill interval that ended with a measured residual: what went, what was programmed."""

    started_at: object
    ended_at: object
    gone_ml: Decimal
    programmed_ml: Decimal
    ratio: Decimal | None  # gone ÷ programmed; None when nothing was programmed (a stopped pump)
    excluded: bool  # ended with a documented discrepancy: left out of the pump's ratio


# A change of the per-interval ratio smaller than this over the intervals shown is "steady".
TREND_STEP = Decimal("0.02")


def delivery_intervals(pump, last: int = 6) -> list[DeliveryInterval]:
    """The pump's last ``last`` refill intervals, oldest first, from the same samples as the
    projection's delivery ratio (``services.delivery_samples``). Two queries."""
    from . import services

    refills = list(pump.refills.select_related("drug_product").order_by("performed_at"))
    programs = list(pump.programs.order_by("effective_at", "id"))
    samples = services.delivery_samples(pump, refills, programs)
    intervals = [
        DeliveryInterval(
            started_at=previous.performed_at,
            ended_at=following.performed_at,
            gone_ml=sample.gone_ml,
            programmed_ml=sample.programmed_ml,
            ratio=sample.gone_ml / sample.programmed_ml if sample.programmed_ml > 0 else None,
            excluded=sample.excluded,
        )
        for previous, following, sample in zip(refills, refills[1:], samples, strict=False)
    ]
    return intervals[-last:]


def delivery_trend(intervals: list[DeliveryInterval]) -> str:
    """ "rising", "falling" or "steady" over the usable intervals shown; "" with fewer than two."""
    ratios = [i.ratio for i in intervals if i.ratio is not None and not i.excluded]
    if len(ratios) < 2:
        return ""
    change = ratios[-1] - ratios[0]
    if change > TREND_STEP:
        return "rising"
    if change < -TREND_STEP:
        return "falling"
    return "steady"
