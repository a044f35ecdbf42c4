"""The figures of one period, one function per section of the report (``clinic_report``), and
the arithmetic they share."""

from __future__ import annotations

import calendar as _calendar
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from django.db.models import (
    Count,
    DateTimeField,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    Sum,
    Value,
)
from django.db.models.functions import Greatest, Least, TruncDate
from django.utils import timezone

from alerts.models import Alert, AlertKind, Channel, Notification, ReviewConclusion, Severity
from clinics.models import Clinic, Membership, Role
from clinics.selectors import rota_plans
from patients.models import Appointment, Patient, Pump, PumpProjection, RefillVisit

from .definitions import (
    FigureValue,
    LateRefill,
    Period,
    Report,
    _figures,
)

# --- arithmetic shared by the figures ------------------------------------------------------------

ONE_PLACE = Decimal("0.1")
SECONDS_PER_DAY = Decimal(86400)
DURATION = DurationField()
ERI_WINDOW_DAYS = 180  # issue 14: "within 180 days of their ERI date (or past it)"
ACKNOWLEDGED_WITHIN = timedelta(minutes=15)


def _share(part: int, whole: int) -> Decimal | None:
    """part / whole as a percentage to one decimal place; None when there is nothing to share."""
    if not whole:
        return None
    return (Decimal(part) * 100 / Decimal(whole)).quantize(ONE_PLACE, rounding=ROUND_HALF_UP)


def _days(delta: timedelta | None) -> Decimal:
    if delta is None:
        return Decimal(0)
    seconds = Decimal(delta.days) * SECONDS_PER_DAY + Decimal(delta.seconds) + Decimal(delta.microseconds) / 10**6
    return seconds / SECONDS_PER_DAY


def percentile(sorted_values: list[Decimal], fraction: Decimal) -> Decimal | None:
    """The ``fraction`` percentile of values sorted ascending, by linear interpolation between the
    two closest ranks (PostgreSQL's ``percentile_cont``, numpy's default): rank = f × (n − 1)."""
    if not sorted_values:
        return None
    rank = Decimal(fraction) * (len(sorted_values) - 1)
    low = int(rank)  # rank ≥ 0: int() is the floor
    high = min(low + 1, len(sorted_values) - 1)
    weight = rank - low
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * weight


def _rounded(value: Decimal | None) -> Decimal | None:
    return None if value is None else value.quantize(ONE_PLACE, rounding=ROUND_HALF_UP)


def _minutes(delta: timedelta) -> Decimal:
    return _days(delta) * 1440


def _overlap(start_field, end_field, start: datetime, end: datetime):
    """Elapsed time of [start_field, end_field) within [start, end), for rows filtered to overlap."""
    return ExpressionWrapper(
        Least(F(end_field), Value(end)) - Greatest(F(start_field), Value(start)), output_field=DURATION
    )


def _month_fraction(period: Period) -> Decimal:
    """How many months the period spans: each month counts the share of its days in the period
    (a month is 1, a quarter 3, 1–15 June is 0.5)."""
    months = Decimal(0)
    day = period.start
    while day <= period.end:
        last_of_month = date(day.year, day.month, _calendar.monthrange(day.year, day.month)[1])
        upto = min(last_of_month, period.end)
        months += Decimal((upto - day).days + 1) / Decimal(last_of_month.day)
        day = upto + timedelta(days=1)
    return months


# --- the figures, one function per section ---------------------------------------------------------


def _refills(clinic: Clinic, start: datetime, end: datetime):
    return RefillVisit.objects.filter(pump__patient__clinic=clinic, performed_at__gte=start, performed_at__lt=end)


def _refill_counts() -> dict:
    """The refills' counts, as aggregates over refills annotated with ``local_day``."""
    return {
        "total": Count("pk"),
        "with_due": Count("pk", filter=Q(prior_due_on__isnull=False)),
        "on_time": Count("pk", filter=Q(prior_due_on__isnull=False, local_day__lte=F("prior_due_on"))),
        "checked": Count("pk", filter=Q(expected_residual_ml__isnull=False)),
        "flagged": Count("pk", filter=Q(expected_residual_ml__isnull=False, discrepancy=True)),
    }


def _refill_count_values(counts, values):
    values["refills_count"] = counts["total"]
    values["refills_on_time_share"] = _share(counts["on_time"], counts["with_due"])
    values["discrepancy_share"] = _share(counts["flagged"], counts["checked"])


def _margins(refills, values):
    """Margins: one column, sorted by the database; the percentiles are taken over it here."""
    margins = [
        _days(margin)
        for margin in refills.filter(prior_lra_at__isnull=False)
        .annotate(margin=ExpressionWrapper(F("prior_lra_at") - F("performed_at"), output_field=DURATION))
        .order_by("margin")
        .values_list("margin", flat=True)
    ]
    values["margin_median_days"] = _rounded(percentile(margins, Decimal("0.5")))
    values["margin_p10_days"] = _rounded(percentile(margins, Decimal("0.1")))


def _refill_figures(clinic: Clinic, start: datetime, end: datetime, zone: ZoneInfo, values, breakdowns):
    """Sections Refills, Margin, Discrepancies (share): three queries."""
    refills = _refills(clinic, start, end)
    counts = refills.annotate(local_day=TruncDate("performed_at", tzinfo=zone)).aggregate(**_refill_counts())
    _refill_count_values(counts, values)
    _margins(refills, values)

    late = []
    for refill_id, pump_id, performed_at, empty_at in (
        refills.filter(prior_lra_at__lt=F("performed_at"))
        .order_by("performed_at", "pk")
        .values_list("pk", "pump_id", "performed_at", "prior_empty_at")
    ):
        after = "empty" if empty_at is not None and empty_at < performed_at else "alarm"
        late.append(LateRefill(refill_id=refill_id, pump_id=pump_id, performed_at=performed_at, after=after))
    values["refills_after_alarm"] = len(late)
    values["refills_after_empty"] = sum(1 for refill in late if refill.after == "empty")
    return tuple(late)


def _days_empty(clinic: Clinic, start: datetime, end: datetime, now: datetime) -> Decimal:
    """Two queries: fills that ended with a refill, and the current fills of pumps in service."""
    closed = (
        RefillVisit.objects.filter(
            pump__patient__clinic=clinic,
            prior_empty_at__isnull=False,
            prior_empty_at__lt=F("performed_at"),
        )
        .filter(prior_empty_at__lt=end, performed_at__gt=start)
        .aggregate(total=Sum(_overlap("prior_empty_at", "performed_at", start, end)))["total"]
    )
    until = min(end, now)
    current = None
    if until > start:
        current = (
            PumpProjection.objects.filter(
                pump__patient__clinic=clinic,
                pump__status=Pump.Status.ACTIVE,
                pump__patient__status=Patient.Status.ACTIVE,
                empty_at__isnull=False,
                empty_at__lt=until,
            )
            .annotate(until=Value(until, output_field=DateTimeField()))
            .aggregate(total=Sum(_overlap("empty_at", "until", start, until)))["total"]
        )
    return _rounded(_days(closed) + _days(current))


def _appointments(clinic: Clinic, start: datetime, end: datetime):
    return Appointment.objects.filter(
        pump__patient__clinic=clinic, kind=Appointment.Kind.REFILL, scheduled_for__gte=start, scheduled_for__lt=end
    )


def _appointment_counts() -> dict:
    return {
        "kept": Count("pk", filter=Q(status=Appointment.Status.COMPLETED)),
        "missed": Count("pk", filter=Q(status=Appointment.Status.MISSED)),
        "cancelled": Count("pk", filter=Q(status=Appointment.Status.CANCELLED)),
    }


def _appointment_values(counts, values):
    values["appointments_kept"] = counts["kept"]
    values["appointments_missed"] = counts["missed"]
    values["appointments_cancelled"] = counts["cancelled"]


def _appointment_figures(clinic: Clinic, start: datetime, end: datetime, values):
    """One query."""
    _appointment_values(_appointments(clinic, start, end).aggregate(**_appointment_counts()), values)


def pumps_in_service_q(period: Period) -> Q:
    """Pumps in service at some time in the period: implanted on or before its last day, not
    explanted before its first, of a patient in the clinic's care then (active, or whose status
    changed on or after the first day)."""
    return (
        Q(implanted_on__lte=period.end)
        & (Q(explanted_on__isnull=True) | Q(explanted_on__gte=period.start))
        & (Q(patient__status=Patient.Status.ACTIVE) | Q(patient__status_changed_on__gte=period.start))
    )


def _by_severity(rows) -> dict[int, list[Decimal]]:
    found: dict[int, list[Decimal]] = {}
    for severity, delta in rows:
        found.setdefault(severity, []).append(_minutes(delta))
    return found


def _severity_breakdown(by_severity: dict[int, list[Decimal]], fraction: Decimal):
    return tuple(
        (Severity(severity).label, _rounded(percentile(sorted(found), fraction)))
        for severity, found in sorted(by_severity.items())
    )


def _alerts(clinic: Clinic, start: datetime, end: datetime):
    return Alert.objects.filter(clinic=clinic, raised_at__gte=start, raised_at__lt=end)


def _count_by(rows, *columns):
    """One query: (*columns, count) rows."""
    return rows.order_by().values_list(*columns).annotate(n=Count("pk"))


def _pump_alerts(alerts):
    """Alerts about a pump (rota gaps are about the clinic), counted by kind."""
    return alerts.exclude(kind=AlertKind.ROTA_GAP)


def _per_100_values(pumps: int, by_kind: dict, values, breakdowns):
    if pumps:
        per_100 = Decimal(100) / Decimal(pumps)
        values["alerts_per_100_pumps"] = _rounded(sum(by_kind.values()) * per_100)
        breakdowns["alerts_per_100_pumps"] = tuple(
            (AlertKind(kind).label, _rounded(count * per_100)) for kind, count in sorted(by_kind.items())
        )


def _alert_times(alerts, values, breakdowns):
    """Times to acknowledge and to resolve: two queries."""
    for key, column in (("acknowledge", "acknowledged_at"), ("resolve", "resolved_at")):
        rows = (
            alerts.filter(**{f"{column}__isnull": False})
            .annotate(taken=ExpressionWrapper(F(column) - F("raised_at"), output_field=DURATION))
            .order_by("severity", "taken")
            .values_list("severity", "taken")
        )
        by_severity = _by_severity(rows)
        every = sorted(m for found in by_severity.values() for m in found)
        values[f"{key}_minutes_median"] = _rounded(percentile(every, Decimal("0.5")))
        values[f"{key}_minutes_p90"] = _rounded(percentile(every, Decimal("0.9")))
        breakdowns[f"{key}_minutes_median"] = _severity_breakdown(by_severity, Decimal("0.5"))
        breakdowns[f"{key}_minutes_p90"] = _severity_breakdown(by_severity, Decimal("0.9"))


def _urgent(alerts):
    return alerts.filter(severity__in=[Severity.CRITICAL, Severity.EMERGENCY])


def _urgent_counts() -> dict:
    return {
        "total": Count("pk"),
        "quick": Count("pk", filter=Q(acknowledged_at__lte=F("raised_at") + ACKNOWLEDGED_WITHIN)),
    }


def _urgent_values(counts, values):
    values["urgent_acknowledged_15min_share"] = _share(counts["quick"], counts["total"])


def _failed_notifications(clinic: Clinic, start: datetime, end: datetime):
    """Failed notifications of the period, counted by channel."""
    return Notification.objects.filter(
        alert__clinic=clinic, status=Notification.Status.FAILED, created_at__gte=start, created_at__lt=end
    )


def _failed_values(failed: dict, values, breakdowns):
    values["notifications_failed"] = sum(failed.values())
    breakdowns["notifications_failed"] = tuple((Channel(c).label, n) for c, n in sorted(failed.items()))


def _rota_gap_figures(clinic: Clinic, start: datetime, end: datetime, values, breakdowns):
    """rota_plans' three queries."""
    plans = [plan for plan in rota_plans(start, end, clinic_ids=[clinic.pk]) if plan.in_use]
    if plans:
        hours = {plan.rotation.name: sum((_days(b - a) * 24 for a, b in plan.gaps), Decimal(0)) for plan in plans}
        values["rota_gap_hours"] = _rounded(sum(hours.values(), Decimal(0)))
        breakdowns["rota_gap_hours"] = tuple((name, _rounded(h)) for name, h in sorted(hours.items()))


def _alerting_figures(clinic: Clinic, period: Period, start: datetime, end: datetime, values, breakdowns):
    """Section Alerting: seven queries (pumps, alerts by kind, acknowledge and resolve times, the
    15-minute share, failed notifications) plus rota_plans' three."""
    pumps = Pump.objects.filter(pumps_in_service_q(period), patient__clinic=clinic).count()
    alerts = _alerts(clinic, start, end)
    _per_100_values(pumps, dict(_count_by(_pump_alerts(alerts), "kind")), values, breakdowns)
    _alert_times(alerts, values, breakdowns)
    _urgent_values(_urgent(alerts).aggregate(**_urgent_counts()), values)
    _failed_values(dict(_count_by(_failed_notifications(clinic, start, end), "channel")), values, breakdowns)
    _rota_gap_figures(clinic, start, end, values, breakdowns)


def _device_figures(clinic: Clinic, today: date, values):
    """Section Devices, as of ``today``: two queries."""
    in_service = Pump.objects.in_service().filter(patient__clinic=clinic)
    booked = Appointment.objects.filter(
        pump=OuterRef("pk"), kind=Appointment.Kind.REPLACEMENT, status=Appointment.Status.SCHEDULED
    )
    values["pumps_near_eri_unbooked"] = (
        in_service.filter(eri_on__isnull=False, eri_on__lte=today + timedelta(days=ERI_WINDOW_DAYS))
        .exclude(Exists(booked))
        .count()
    )
    values["pumps_drifting"] = in_service.filter(
        projection__delivery_ratio__isnull=False, projection__delivery_ratio__gt=clinic.drift_alert_ratio
    ).count()


NURSE = ("performed_by", "performed_by__first_name", "performed_by__last_name", "performed_by__username")


def _nurse_refills(clinic: Clinic, start: datetime, end: datetime):
    """Refills of the period by a nurse of the clinic, counted by ``NURSE``."""
    nurse = Membership.objects.filter(user=OuterRef("performed_by"), clinic=clinic, role=Role.NURSE)
    return _refills(clinic, start, end).filter(Exists(nurse))


def _workload_values(rows, period: Period, values, breakdowns):
    if not rows:
        return
    months = _month_fraction(period)
    per_nurse = sorted(
        ((f"{first} {last}".strip() or username, Decimal(n) / months) for _pk, first, last, username, n in rows),
        key=lambda row: row[0],
    )
    values["refills_per_nurse_month"] = _rounded(sum(v for _name, v in per_nurse) / len(per_nurse))
    breakdowns["refills_per_nurse_month"] = tuple((name, _rounded(v)) for name, v in per_nurse)


def _workload(clinic: Clinic, period: Period, start: datetime, end: datetime, values, breakdowns):
    """Section Workload: one query."""
    _workload_values(list(_count_by(_nurse_refills(clinic, start, end), *NURSE)), period, values, breakdowns)


def _conclusions(clinic: Clinic, start: datetime, end: datetime):
    """Physician reviews concluded in the period, counted by outcome."""
    return ReviewConclusion.objects.filter(alert__clinic=clinic, concluded_at__gte=start, concluded_at__lt=end)


def _review_values(by_outcome: dict, values, breakdowns):
    """Every outcome listed, zero included."""
    values["review_conclusions"] = sum(by_outcome.values())
    breakdowns["review_conclusions"] = tuple(
        (label, by_outcome.get(outcome, 0)) for outcome, label in ReviewConclusion.Outcome.choices
    )


def _review_conclusions(clinic: Clinic, start: datetime, end: datetime, values, breakdowns):
    """Physician reviews concluded in the period, by outcome: one query."""
    _review_values(dict(_count_by(_conclusions(clinic, start, end), "outcome")), values, breakdowns)


def _report_values(clinic: Clinic, period: Period, now: datetime):
    zone = clinic.zone
    start, end = period.bounds(zone)
    values: dict[str, FigureValue] = {}
    breakdowns: dict[str, tuple] = {}
    late = _refill_figures(clinic, start, end, zone, values, breakdowns)
    values["days_empty"] = _days_empty(clinic, start, end, now) if start < now else None
    _appointment_figures(clinic, start, end, values)
    _alerting_figures(clinic, period, start, end, values, breakdowns)
    _device_figures(clinic, now.astimezone(zone).date(), values)
    _workload(clinic, period, start, end, values, breakdowns)
    _review_conclusions(clinic, start, end, values, breakdowns)
    return values, breakdowns, late


def clinic_report(clinic: Clinic, period: Period, now: datetime | None = None) -> Report:
    """Every figure of ``clinic`` over ``period``, in a constant number of queries."""
    now = now or timezone.now()
    values, breakdowns, late = _report_values(clinic, period, now)
    return Report(clinic=clinic, period=period, figures=_figures(values, breakdowns), late_refills=late)
