"""Synthetic data for the benchmark commands, built fast with ``bulk_create``.

Every name, MRN, serial number and login here is invented and says so ("BENCH-000001",
"Synthetic", ``@example.invalid``). Patients, pumps, programs, refills and projections are
written directly, without the services: no history rows, no signals, no alerts raised while
building. The benchmarks run inside a transaction that is rolled back, so nothing is kept unless
asked.

Projection rows for the scan benchmark are copies of one template per risk group, computed once
with ``depletion.project`` and shifted by whole days. In a zone without daylight saving (the
benchmark clinic is in America/Phoenix) such a copy is exactly what ``depletion.project`` gives
for the shifted fill: every instant moves by the same days, every clinic-zone date too — except
the due date, which then moves to the clinic's last open day (weekends are closed, as in any
clinic), with the "due soon" and "overdue" instants that follow from it.
"""

from __future__ import annotations

import random
import re
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_CEILING, Decimal

from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from clinics.calendar import ClinicCalendar, calendar_of
from clinics.models import Clinic, Membership, Role, Rotation

from . import depletion
from .models import DrugProduct, Patient, Program, Pump, PumpModel, PumpProjection, RefillVisit

CLINIC_NAME = "Benchmark Clinic (synthetic)"
ZONE = "America/Phoenix"  # no daylight saving: whole-day shifts of a projection are exact
BATCH = 5000  # rows built per round (progress is reported per round)
INSERT_BATCH = 1000  # rows per INSERT statement (SQLite lowers it to fit its parameter limit)

PUMP_MODEL = ("Medtronic", "SynchroMed II 40 mL")
DRUG = ("Gablofen", Decimal("2000"))
VOLUME_ML = Decimal("40.00")
DOSES_MCG = (Decimal("300"), Decimal("450"), Decimal("600"))
TEMPLATE_DOSE_MCG = Decimal("600")
REFILL_INTERVAL_DAYS = 90
CENT = Decimal("0.01")
SECONDS_PER_DAY = Decimal(86400)

# (username suffix, role, on the rota of their role: the benchmark clinic's on-call nurse and physician)
STAFF = (
    ("nurse-1", Role.NURSE, True),
    ("nurse-2", Role.NURSE, False),
    ("nurse-3", Role.NURSE, False),
    ("physician-1", Role.PHYSICIAN, True),
    ("physician-2", Role.PHYSICIAN, False),
    ("admin-1", Role.CLINIC_ADMIN, False),
)

AT_RISK_STATES = (depletion.CRITICAL, depletion.OVERDUE, depletion.DUE_SOON)
# How the at-risk pumps divide between the states (the rest of the fraction is due soon).
AT_RISK_SHARES = {depletion.CRITICAL: Decimal("0.2"), depletion.OVERDUE: Decimal("0.3")}

Progress = Callable[[str, int, int], None]


def run_tag() -> str:
    """A tag unique to one run: clinic name, logins and serial numbers carry it."""
    return f"{timezone.now():%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def is_high_risk(index: int) -> bool:
    """One synthetic patient in ten has a withdrawal-risk flag (wider margin, higher severity)."""
    return index % 10 == 7


@dataclass
class BenchClinic:
    clinic: Clinic
    tag: str
    staff: dict[str, object]
    pump_model: PumpModel
    drug_product: DrugProduct
    nurses: list = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.clinic.name


def create_clinic(tag: str, *, staff_email: bool = False) -> BenchClinic:
    """The throwaway clinic and its staff. Creating the clinic seeds its default escalation
    policies (a post_save receiver of the alerts app).

    ``staff_email``: give the staff ``@example.invalid`` addresses, so escalations create email
    notifications as a real clinic's would. Off by default: a kept benchmark clinic must never
    cause mail to be sent.
    """
    clinic = Clinic.objects.create(name=f"{CLINIC_NAME} {tag}", timezone=ZONE, phone="+1 555 0199 (synthetic)")
    User = get_user_model()
    staff = {}
    for suffix, role, on_call in STAFF:
        username = f"bench-{tag}-{suffix}"
        user = User(
            username=username,
            first_name="Synthetic",
            last_name=suffix.replace("-", " ").title(),
            email=f"{username}@example.invalid" if staff_email else "",
        )
        user.set_unusable_password()
        user.save()
        membership = Membership.objects.create(user=user, clinic=clinic, role=role)
        if on_call:  # the default rotation of the role (created with the clinic) has them alone
            Rotation.objects.filter(clinic=clinic, role=role).update(member_ids=[membership.pk])
        staff[suffix] = user
    return BenchClinic(
        clinic=clinic,
        tag=tag,
        staff=staff,
        pump_model=PumpModel.objects.get(manufacturer=PUMP_MODEL[0], name=PUMP_MODEL[1]),
        drug_product=DrugProduct.objects.get(name=DRUG[0], concentration_mcg_per_ml=DRUG[1]),
        nurses=[staff[suffix] for suffix, role, _ in STAFF if role == Role.NURSE],
    )


def _bulk_create(model, objects: list) -> list:
    created = model.objects.bulk_create(objects, batch_size=INSERT_BATCH)
    if created and created[0].pk is None:  # a backend that cannot return ids from a bulk INSERT
        raise RuntimeError(f"{connection.vendor} did not return the ids of bulk-created {model.__name__} rows")
    return created


def build_pumps(
    bench: BenchClinic,
    count: int,
    add: Callable[[Sequence[int], list[Pump]], int],
    *,
    first_index: int = 0,
    progress: Progress | None = None,
    batch: int = BATCH,
) -> int:
    """Create ``count`` synthetic patients with one implanted pump each, ``batch`` at a time;
    ``add(indices, pumps)`` builds each round's other rows and returns how many. Returns the
    number of rows created."""
    rows = 0
    implanted_on = timezone.now().date() - timedelta(days=3 * 365)
    for start in range(first_index, first_index + count, batch):
        indices = range(start, min(first_index + count, start + batch))
        patients = _bulk_create(
            Patient,
            [
                Patient(
                    clinic=bench.clinic,
                    mrn=f"BENCH-{i + 1:06d}",
                    given_name="Synthetic",
                    family_name=f"Bench-{i + 1:06d}",
                    birth_date=date(1950 + i % 50, 1 + i % 12, 1 + i % 28),
                    phone="+1 555 0199 (synthetic)",
                    sci_at_or_above_t6=is_high_risk(i),
                )
                for i in indices
            ],
        )
        pumps = _bulk_create(
            Pump,
            [
                Pump(
                    patient=patient,
                    pump_model=bench.pump_model,
                    serial_number=f"BENCH-{bench.tag}-{i + 1:06d}",
                    implanted_on=implanted_on,
                    assigned_nurse=bench.nurses[i % len(bench.nurses)],
                    lra_ml=bench.pump_model.default_lra_ml,
                )
                for i, patient in zip(indices, patients, strict=True)
            ],
        )
        rows += len(patients) + len(pumps) + add(indices, pumps)
        if progress:
            progress("pumps", indices[-1] - first_index + 1, count)
    return rows


# --- refill histories (the projection benchmark) -------------------------------------------------


def project_fill(
    bench: BenchClinic,
    filled_at: datetime,
    rate: Decimal,
    now: datetime,
    *,
    high_risk: bool,
    calendar: ClinicCalendar | None = None,
) -> depletion.Projection:
    """A fill of ``VOLUME_ML`` at ``filled_at`` delivering ``rate`` mL/day, projected at ``now``
    with ``depletion.project`` under the bench clinic's settings, model and drug (no vial expiry;
    ``calendar``: its closed days, none when not given)."""
    clinic = bench.clinic
    fill = depletion.Fill(filled_at, VOLUME_ML, (depletion.Segment(filled_at, rate),))
    return depletion.project(
        fill,
        lra_ml=bench.pump_model.default_lra_ml,
        max_days_in_pump=bench.drug_product.max_days_in_pump,
        vial_expires_on=None,
        zone=clinic.zone,
        overinfusion_allowance_pct=clinic.overinfusion_allowance_pct,
        margin=depletion.margin_days(clinic.refill_margin_days, 0, clinic.high_risk_extra_days, high_risk),
        reminder_days=clinic.reminder_days,
        critical_hours=clinic.critical_hours,
        now=now,
        is_closed=calendar,
    )


def refill_history_adder(bench: BenchClinic, now: datetime, refills: int, *, seed: int = 1, snapshot: bool = False):
    """An ``add`` for ``build_pumps``: ``refills`` refills per pump, about every 90 days, the last
    one 1–110 days ago; each starts its program; residuals close to the expected one; one pump in
    ten had its dose raised 10 % three weeks after its last fill. ``snapshot``: each refill after
    the first also stores what the previous fill's projection said (``prior_*``, as
    ``record_refill`` does), computed with ``depletion.project``."""
    rng = random.Random(seed)
    nurse_count = len(bench.nurses)
    calendar = calendar_of(bench.clinic) if snapshot else None

    def prior(previous_at: datetime, at: datetime, rate: Decimal, high_risk: bool) -> dict:
        projection = project_fill(bench, previous_at, rate, at, high_risk=high_risk, calendar=calendar)
        return {
            "prior_due_on": projection.refill_due_on,
            "prior_unmoved_due_on": projection.unmoved_refill_due_on,
            "prior_lra_at": projection.lra_at,
            "prior_empty_at": projection.empty_at,
            "prior_conservative_lra_at": projection.conservative_lra_at,
        }

    def add(indices: Sequence[int], pumps: list[Pump]) -> int:
        programs, visits = [], []
        for i, pump in zip(indices, pumps, strict=True):
            dose = DOSES_MCG[i % len(DOSES_MCG)]
            rate = depletion.rate_ml_per_day(dose, Decimal(0), DRUG[1])
            last_at = (now - timedelta(days=rng.randint(1, 110), hours=rng.randint(0, 8))).replace(microsecond=0)
            times = [last_at]
            for _ in range(refills - 1):
                times.append(times[-1] - timedelta(days=REFILL_INTERVAL_DAYS + rng.randint(-6, 6)))
            times.reverse()
            for n, at in enumerate(times):
                expected = None
                aspirated = Decimal(0)
                if n > 0:
                    elapsed = Decimal(int((at - times[n - 1]).total_seconds())) / SECONDS_PER_DAY
                    expected = max(VOLUME_ML - rate * elapsed, Decimal(0)).quantize(CENT)
                    aspirated = max(expected + Decimal(rng.randint(-40, 40)) / 100, Decimal(0))
                program = Program(
                    pump=pump,
                    effective_at=at,
                    concentration_mcg_per_ml=DRUG[1],
                    daily_dose_mcg=dose,
                    entered_by=bench.nurses[i % nurse_count],
                )
                programs.append(program)
                visits.append(
                    RefillVisit(
                        pump=pump,
                        performed_at=at,
                        performed_by=bench.nurses[i % nurse_count],
                        reservoir_ml=bench.pump_model.reservoir_ml,
                        expected_residual_ml=expected,
                        aspirated_ml=aspirated,
                        volume_added_ml=VOLUME_ML,
                        drug_product=bench.drug_product,
                        concentration_mcg_per_ml=DRUG[1],
                        drug_lot=f"BENCH-LOT-{n + 1:02d}",
                        program=program,
                        **(prior(times[n - 1], at, rate, is_high_risk(i)) if snapshot and n > 0 else {}),
                    )
                )
            changed_at = last_at + timedelta(days=21)
            if i % 10 == 3 and changed_at < now:
                programs.append(
                    Program(
                        pump=pump,
                        effective_at=changed_at,
                        concentration_mcg_per_ml=DRUG[1],
                        daily_dose_mcg=(dose * Decimal("1.1")).quantize(CENT),
                        entered_by=bench.nurses[i % nurse_count],
                    )
                )
        _bulk_create(Program, programs)
        for visit in visits:
            visit.program_id = visit.program.pk  # set after the programs got their ids
        _bulk_create(RefillVisit, visits)
        return len(programs) + len(visits)

    return add


# --- stored projections (the scan benchmark) ------------------------------------------------------


def at_risk_plan(count: int, fraction: float) -> dict[int, str]:
    """Which pump indices are at risk, and in which state: ``fraction`` of ``count``, spread evenly
    (at least one per at-risk state when the fraction is above zero), the rest ok."""
    if fraction <= 0 or count == 0:
        return {}
    total = min(count, max(round(count * fraction), len(AT_RISK_STATES)))
    critical = max(1, int(total * AT_RISK_SHARES[depletion.CRITICAL]))
    overdue = max(1, int(total * AT_RISK_SHARES[depletion.OVERDUE]))
    states = [depletion.CRITICAL] * critical + [depletion.OVERDUE] * overdue
    states += [depletion.DUE_SOON] * (total - len(states))
    return {j * count // total: state for j, state in enumerate(states)}


@dataclass(frozen=True)
class Template:
    """One fill projected with ``depletion.project``, and the days since that fill at which a
    pump is in each state (judged at ``now``, before the pump would run empty)."""

    projection: depletion.Projection
    days_in_state: dict[str, list[int]]
    calendar: ClinicCalendar
    reminder_days: int


def projection_template(bench: BenchClinic, now: datetime, *, high_risk: bool) -> Template:
    clinic = bench.clinic
    rate = depletion.rate_ml_per_day(TEMPLATE_DOSE_MCG, Decimal(0), DRUG[1])
    projection = project_fill(bench, now, rate, now, high_risk=high_risk)
    template = Template(projection, {}, calendar_of(clinic), clinic.reminder_days)
    # The fill ``days`` days ago, judged at ``now``.
    for days in range(0, 400):
        if projection.empty_at is not None and now + timedelta(days=days) >= projection.empty_at:
            break
        row = shifted_projection(None, template, days, now)
        template.days_in_state.setdefault(depletion.status_at(row, now), []).append(days)
    missing = {*AT_RISK_STATES, depletion.OK} - set(template.days_in_state)
    if missing:
        raise RuntimeError(f"the template never reaches {sorted(missing)}: check the clinic's settings")
    return template


def measured_ratio(index: int) -> Decimal:
    """A measured delivery ratio between 0.95 and 1.05: no drift, and never above the clinic's 5 %
    over-infusion allowance, so the template's conservative instants hold unchanged."""
    return Decimal("0.95") + Decimal(index % 11) / 100


def shifted_projection(
    pump: Pump, template: Template, days_ago: int, now: datetime, delivery_ratio: Decimal | None = None
) -> PumpProjection:
    """The template moved ``days_ago`` whole days back, as the row ``recompute_projection`` stores."""
    p = template.projection
    shift = timedelta(days=days_ago)

    def back(at):
        return None if at is None else at - shift

    unmoved = p.unmoved_refill_due_on - shift
    due_on = depletion.last_open_day_on_or_before(unmoved, template.calendar)
    overdue_from, due_soon_from = depletion.status_instants(due_on, template.calendar.zone, template.reminder_days)
    return PumpProjection(
        pump=pump,
        computed_at=now,
        filled_at=p.filled_at - shift,
        reservoir_at_fill_ml=p.reservoir_at_fill_ml,
        rate_ml_per_day=p.rate_ml_per_day.quantize(Decimal("0.0001"), rounding=ROUND_CEILING),
        conservative_factor=p.conservative_factor.quantize(Decimal("0.0001"), rounding=ROUND_CEILING),
        lra_at=back(p.lra_at),
        empty_at=back(p.empty_at),
        conservative_lra_at=back(p.conservative_lra_at),
        drug_expires_at=p.drug_expires_at - shift,
        refill_due_on=due_on,
        unmoved_refill_due_on=unmoved,
        delivery_ratio=delivery_ratio,
        critical_from=p.critical_from - shift,
        overdue_from=overdue_from,
        due_soon_from=due_soon_from,
        is_stopped=p.is_stopped,
        segments=[[(p.filled_at - shift).isoformat(), str(p.rate_ml_per_day)]],
    )


def projection_adder(bench: BenchClinic, now: datetime, plan: dict[int, str]):
    """An ``add`` for ``build_pumps``: a stored projection per pump, in the state ``plan`` gives
    (ok otherwise), with the days since the fill spread over that state's range."""
    templates = {risk: projection_template(bench, now, high_risk=risk) for risk in (False, True)}

    def add(indices: Sequence[int], pumps: list[Pump]) -> int:
        rows = []
        for i, pump in zip(indices, pumps, strict=True):
            template = templates[is_high_risk(i)]
            days = template.days_in_state[plan.get(i, depletion.OK)]
            rows.append(shifted_projection(pump, template, days[(i * 7919) % len(days)], now, measured_ratio(i)))
        return len(_bulk_create(PumpProjection, rows))

    return add


def analyze(models: Iterable) -> None:
    """Refresh the query planner's statistics of these tables, as autovacuum keeps them on a live
    PostgreSQL database. Inside the benchmark's transaction: they roll back with the rows."""
    with connection.cursor() as cursor:
        for model in models:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")


def dead_rows_warning() -> str | None:
    """A rolled-back INSERT leaves dead rows that only VACUUM reclaims: on a PostgreSQL server
    whose autovacuum is off they pile up from run to run and slow the next one."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SHOW autovacuum")
        (autovacuum,) = cursor.fetchone()
    if autovacuum == "on":
        return None
    return (
        "PostgreSQL's autovacuum is off here: the rolled-back rows stay behind as dead rows and slow "
        "the next run. Run VACUUM on this database between runs."
    )


def other_pumps_in_service() -> int:
    """Pumps in service outside the benchmark clinics: a shared database's real workload."""
    return Pump.objects.in_service().exclude(patient__clinic__name__startswith=CLINIC_NAME).count()


# --- measuring --------------------------------------------------------------------------------------


class QueryCounter:
    """Counts every statement sent on the connection, savepoints included, without logging SQL."""

    def __init__(self):
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)


@dataclass
class Measurement:
    seconds: float = 0.0  # wall clock
    cpu_seconds: float = 0.0  # this process only (not the database server's); steadier on a busy machine
    queries: int = 0

    def per(self, items: int) -> tuple[float, float]:
        """(items per second, queries per item)."""
        return (items / self.seconds if self.seconds else float("inf"), self.queries / items if items else 0.0)


@contextmanager
def measured():
    """Seconds and statements of the block (filled in when it ends)."""
    measurement = Measurement()
    counter = QueryCounter()
    start, cpu_start = time.perf_counter(), time.process_time()
    try:
        with connection.execute_wrapper(counter):
            yield measurement
    finally:
        measurement.seconds = time.perf_counter() - start
        measurement.cpu_seconds = time.process_time() - cpu_start
        measurement.queries = counter.count


_VERB = re.compile(
    r"\s*(RELEASE SAVEPOINT|ROLLBACK TO SAVEPOINT|SAVEPOINT|SELECT|INSERT INTO|UPDATE|DELETE FROM)", re.I
)
_TABLE = re.compile(r'(?:FROM|INTO|UPDATE)\s+"([^"]+)"', re.I)


def describe_query(sql: str) -> str:
    """What a captured statement does, in a few words: 'SELECT patients_refillvisit', 'SAVEPOINT'…"""
    match = _VERB.match(sql)
    verb = match.group(1).upper() if match else sql.split(None, 1)[0].upper()
    if verb.endswith("SAVEPOINT"):
        return verb
    table = _TABLE.search(sql)
    locking = " (for update)" if sql.rstrip().upper().endswith("FOR UPDATE") else ""
    return f"{verb} {table.group(1) if table else '?'}{locking}"
