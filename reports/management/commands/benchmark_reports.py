"""Benchmark the clinic report (issue 14): build a synthetic clinic of ``--pumps`` pumps with
``--years`` of refills (one about every 90 days, each with its stored snapshot of the projection
before it), a stored projection per pump, refill appointments for the last year and an alert a
year per pump; then time ``clinic_report`` for the last full month and ``monthly_trend`` for the
12 months before it, and print seconds and queries.

Everything runs in one transaction that is rolled back, as ``benchmark_scan`` does: nothing is
kept, and no broker or mail is touched. Built with ``patients/benchdata.py``.
"""

from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.test.utils import override_settings
from django.utils import timezone

from alerts.models import Alert, AlertKind, Severity
from clinics.models import Clinic, Membership
from patients import benchdata
from patients.models import Appointment, Patient, Program, Pump, PumpProjection, RefillVisit
from reports.figures import Period, clinic_report, monthly_trend

REFILLS_PER_YEAR = 4  # benchdata's refills come about every 90 days


def _alerts_and_appointments(bench, now):
    """An ``add`` for ``build_pumps``: per pump, one resolved refill alert a year (acknowledged
    after 1–120 minutes, resolved after 1–2000) and a completed refill appointment each quarter of
    the last year."""

    def add(indices, pumps):
        alerts, appointments = [], []
        for i, pump in zip(indices, pumps, strict=True):
            for year in range(5):
                raised_at = now - timedelta(days=365 * year + i % 300, minutes=i % 1440)
                alerts.append(
                    Alert(
                        clinic=bench.clinic,
                        pump=pump,
                        kind=AlertKind.REFILL_DUE,
                        severity=Severity.REMINDER if i % 10 else Severity.CRITICAL,
                        dedupe_key=f"bench:{pump.pk}:{year}",
                        status=Alert.Status.RESOLVED,
                        raised_at=raised_at,
                        acknowledged_at=raised_at + timedelta(minutes=1 + i % 120),
                        resolved_at=raised_at + timedelta(minutes=1 + i % 2000),
                    )
                )
            for quarter in range(4):
                appointments.append(
                    Appointment(
                        pump=pump,
                        kind=Appointment.Kind.REFILL,
                        scheduled_for=now - timedelta(days=90 * quarter + i % 90),
                        status=Appointment.Status.COMPLETED if i % 20 else Appointment.Status.MISSED,
                    )
                )
        Alert.objects.bulk_create(alerts, batch_size=benchdata.INSERT_BATCH)
        Appointment.objects.bulk_create(appointments, batch_size=benchdata.INSERT_BATCH)
        return len(alerts) + len(appointments)

    return add


class Command(BaseCommand):
    help = "Time the clinic report and its 12-month trend over a synthetic clinic (rolled back)."

    def add_arguments(self, parser):
        parser.add_argument("--pumps", type=int, default=10000, help="Pumps in the clinic (default 10000).")
        parser.add_argument("--years", type=int, default=5, help="Years of refills per pump (default 5).")
        parser.add_argument(
            "--allow-live-database",
            action="store_true",
            help="Run even with DEBUG off on a database with real pumps (holds locks while it runs).",
        )

    def handle(self, *args, pumps, years, allow_live_database, **options):
        if pumps < 1 or years < 1:
            raise CommandError("--pumps and --years must be 1 or more.")
        others = benchdata.other_pumps_in_service()
        if others and not settings.DEBUG and not allow_live_database:
            raise CommandError(
                f"This database has {others:,} pumps in service and DEBUG is off: the benchmark builds its clinic "
                "in one long transaction. Use a copy, or --allow-live-database."
            )
        self.stdout.write(self.style.WARNING("Benchmark: synthetic data in one transaction, rolled back at the end."))
        with override_settings(DEBUG=False):  # no SQL logging, as in production
            self._run(pumps, years)
        if warning := benchdata.dead_rows_warning():
            self.stdout.write(self.style.WARNING(warning))

    def _run(self, pumps, years):
        now = timezone.now().replace(microsecond=0)
        with transaction.atomic():
            bench = benchdata.create_clinic(benchdata.run_tag())
            refills = benchdata.refill_history_adder(bench, now, years * REFILLS_PER_YEAR, snapshot=True)
            projections = benchdata.projection_adder(bench, now, benchdata.at_risk_plan(pumps, 0.01))
            others = _alerts_and_appointments(bench, now)

            def add(indices, built):
                return refills(indices, built) + projections(indices, built) + others(indices, built)

            self.stdout.write(
                f"{bench.name}: {pumps:,} pumps, {years * REFILLS_PER_YEAR} refills each ({connection.vendor})"
            )
            with benchdata.measured() as build:
                rows = benchdata.build_pumps(bench, pumps, add, progress=self._progress)
            self.stdout.write(f"  built {rows:,} rows in {build.seconds:.1f} s")
            benchdata.analyze(
                [Clinic, Membership, Patient, Pump, PumpProjection, Program, RefillVisit, Alert, Appointment]
            )

            local = now.astimezone(bench.clinic.zone).date().replace(day=1) - timedelta(days=1)
            month = Period.month(local.year, local.month)
            for label in ("report (first)", "report (again)"):
                with benchdata.measured() as report:
                    result = clinic_report(bench.clinic, month, now=now)
                self._line(f"{label}, {month.label}", report)
            with benchdata.measured() as trend:
                monthly_trend(bench.clinic, month, now=now)
            self._line("12-month trend", trend)
            self.stdout.write(
                f"  {month.label}: {result.figure('refills_count').value:,} refills, "
                f"on time {result.figure('refills_on_time_share').value} %, "
                f"margin median {result.figure('margin_median_days').value} days"
            )
            transaction.set_rollback(True)
        if Clinic.objects.filter(name=bench.name).exists():  # pragma: no cover - the rollback failed
            raise CommandError(f"{bench.name} is still in the database after the rollback.")

    def _progress(self, what, done, total):
        self.stdout.write(f"  … {done:,}/{total:,} {what}")

    def _line(self, label, m):
        self.stdout.write(f"  {label:<28} {m.seconds:8.3f} s (cpu {m.cpu_seconds:.3f} s) {m.queries:>4} queries")
