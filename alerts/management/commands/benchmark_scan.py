"""Benchmark the escalation scan: for each size, build that many synthetic pumps with stored
projections (about ``--at-risk`` of them due soon, overdue or critical), then time
``engine.run_scan``: the first scan (raises the alerts, notifies), any catch-up scans (a scan
takes at most ``engine.BATCH`` escalations and enqueues at most as many notifications), and a
scan at rest. Prints seconds and queries, and each size's ratios to the first size.

Each size runs in one transaction that is rolled back: nothing is kept, nothing is deleted, and
the scan's ``transaction.on_commit`` hand-offs to the broker never run (no message is sent).
"""

from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.test.utils import override_settings
from django.utils import timezone

from alerts import engine
from alerts.models import Alert, Notification
from clinics.models import Clinic, Membership
from patients import benchdata
from patients.models import Patient, Pump, PumpProjection

WORK = ("raised", "upgraded", "resolved", "escalated", "released", "enqueued")
MAX_CATCH_UP = 50
AT_REST_AFTER = timedelta(minutes=1)


@dataclass
class SizeResult:
    size: int
    at_risk: int
    build: benchdata.Measurement
    first: benchdata.Measurement
    first_summary: dict
    catch_up: list[benchdata.Measurement] = field(default_factory=list)
    rest: benchdata.Measurement | None = None
    rest_summary: dict = field(default_factory=dict)
    alerts: int = 0
    notifications: int = 0


def has_work(summary: dict) -> bool:
    return any(summary.get(key) for key in WORK)


class Command(BaseCommand):
    help = "Time engine.run_scan over synthetic clinics of several sizes (rolled back)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--sizes", default="1000,100000", help="Pump counts, comma-separated (default 1000,100000)."
        )
        parser.add_argument(
            "--at-risk",
            type=float,
            default=0.01,
            help="Fraction of pumps due soon, overdue or critical (default 0.01).",
        )
        parser.add_argument(
            "--no-analyze",
            action="store_true",
            help="Skip ANALYZE after the build (see the query planner without statistics).",
        )
        parser.add_argument(
            "--allow-live-database",
            action="store_true",
            help="Run even with DEBUG off on a database with real pumps (delays the real scanner while it runs).",
        )

    def handle(self, *args, sizes, at_risk, no_analyze, allow_live_database, **options):
        try:
            sizes = [int(size) for size in sizes.split(",") if size.strip()]
        except ValueError:
            raise CommandError("--sizes takes pump counts separated by commas, e.g. 1000,100000.")
        if not sizes or min(sizes) < 1:
            raise CommandError("--sizes needs at least one count of 1 or more.")
        if not 0 <= at_risk <= 1:
            raise CommandError("--at-risk is a fraction between 0 and 1.")
        others = benchdata.other_pumps_in_service()
        if others and not settings.DEBUG and not allow_live_database:
            raise CommandError(
                f"This database has {others:,} pumps in service and DEBUG is off. The benchmark's scans run "
                "over them inside a long transaction and hold the scan heartbeat's row and their due alerts "
                "locked until it ends: the real scanner waits meanwhile. Use a copy, or --allow-live-database."
            )
        self._warn(others)
        results = []
        # DEBUG makes Django log every statement's SQL; production does not, so neither do we.
        with override_settings(DEBUG=False):
            for size in sizes:
                results.append(self._run(size, at_risk, analyze=not no_analyze))
        self._ratios(results)
        if warning := benchdata.dead_rows_warning():
            self.stdout.write(self.style.WARNING(warning))

    def _warn(self, others):
        for line in (
            "Benchmark: synthetic data, each size in one transaction rolled back at the end.",
            "No broker is touched: run_scan's on_commit deliveries never run in a rolled-back transaction.",
            "While it runs it holds locks: "
            + (
                "SQLite's database write lock (other processes wait)."
                if connection.vendor == "sqlite"
                else "the scan heartbeat row and any alerts it touches (a real scanner waits)."
            ),
        ):
            self.stdout.write(self.style.WARNING(line))
        if others:
            self.stdout.write(
                self.style.WARNING(
                    f"{others:,} pumps of other clinics are in service here: every scan includes them "
                    "(a warm-up scan brings them to rest first)."
                )
            )

    def _scan(self, now):
        with benchdata.measured() as measurement:
            summary = engine.run_scan(now)
        return measurement, summary

    def _run(self, size, at_risk, *, analyze) -> SizeResult:
        now = timezone.now().replace(microsecond=0)
        plan = benchdata.at_risk_plan(size, at_risk)
        with transaction.atomic():
            warm_up = 0
            while warm_up < MAX_CATCH_UP and has_work(self._scan(now)[1]):
                warm_up += 1
            bench = benchdata.create_clinic(benchdata.run_tag(), staff_email=True)
            self.stdout.write(
                f"{bench.name}: {size:,} synthetic pumps, {len(plan):,} at risk ({connection.vendor})"
                + (f"; {warm_up} warm-up scans of the other clinics' work" if warm_up else "")
            )
            with benchdata.measured() as build:
                rows = benchdata.build_pumps(
                    bench, size, benchdata.projection_adder(bench, now, plan), progress=self._progress
                )
            self.stdout.write(
                f"  built      {rows:>9,} rows in {build.seconds:7.2f} s ({rows / build.seconds:,.0f} rows/s)"
            )
            if analyze:
                with benchdata.measured() as analyzed:
                    benchdata.analyze([Clinic, Membership, Patient, Pump, PumpProjection])
                self.stdout.write(f"  ANALYZE    {analyzed.seconds:7.2f} s (planner statistics, as on a live database)")

            first, summary = self._scan(now)
            result = SizeResult(size, len(plan), build, first, summary)
            self._line("first scan", first, summary)
            while has_work(summary) and len(result.catch_up) < MAX_CATCH_UP:
                measurement, summary = self._scan(now)
                if has_work(summary):
                    result.catch_up.append(measurement)
                    self._line(f"catch-up {len(result.catch_up)}", measurement, summary)
            result.rest, result.rest_summary = self._scan(now + AT_REST_AFTER)
            self._line("at rest", result.rest, result.rest_summary)
            if has_work(result.rest_summary):
                self.stdout.write(self.style.WARNING("  the scan was not at rest: it still found work"))
            result.alerts = Alert.objects.open().filter(clinic=bench.clinic).count()
            result.notifications = Notification.objects.filter(alert__clinic=bench.clinic).count()
            self.stdout.write(f"  open alerts {result.alerts:,}, notifications {result.notifications:,}")
            transaction.set_rollback(True)
        if Clinic.objects.filter(name=bench.name).exists():  # pragma: no cover - the rollback failed
            raise CommandError(f"{bench.name} is still in the database after the rollback.")
        return result

    def _progress(self, what, done, total):
        self.stdout.write(f"  … {done:,}/{total:,} {what}")

    def _line(self, label, m, summary):
        found = " ".join(f"{key}={summary.get(key, 0)}" for key in WORK)
        self.stdout.write(
            f"  {label:<10} {m.seconds:8.3f} s (cpu {m.cpu_seconds:.3f} s) {m.queries:>5} queries   {found}"
        )

    def _ratios(self, results):
        if len(results) < 2:
            return
        base = results[0]
        self.stdout.write(f"Ratios to {base.size:,} pumps (time ratio vs size ratio; query counts side by side):")
        header = ("pumps", 9), ("size ×", 8), ("first: time ×", 14), ("queries", 13), ("at rest: time ×", 16)
        self.stdout.write("  " + " ".join(f"{title:>{width}}" for title, width in header) + f" {'queries':>11}")
        for r in results:
            self.stdout.write(
                f"  {r.size:>9,} {r.size / base.size:>8.1f} {r.first.seconds / base.first.seconds:>14.1f} "
                f"{f'{r.first.queries} vs {base.first.queries}':>13} "
                f"{r.rest.seconds / base.rest.seconds:>16.1f} {f'{r.rest.queries} vs {base.rest.queries}':>11}"
            )
