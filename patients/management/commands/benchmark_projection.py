"""Benchmark the projection: build N synthetic pumps with a refill history (bulk_create), then
project and store every one through the production path and print pumps per second and
queries per pump.

Everything happens in one transaction that is rolled back at the end (unless ``--keep``): no
row is deleted, so neither PROTECT foreign keys nor PostgreSQL's append-only history trigger are
in the way, and nothing outside the run's own clinic is changed.
"""

from collections import Counter

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils import timezone

from clinics.models import Clinic
from patients import benchdata, services
from patients.models import Pump


class Command(BaseCommand):
    help = "Time projecting and storing N synthetic pumps through services.recompute_projection(s)."

    def add_arguments(self, parser):
        parser.add_argument("--pumps", type=int, default=10000, help="How many synthetic pumps (default 10000).")
        parser.add_argument("--refills", type=int, default=4, help="Refills in each pump's history (default 4).")
        parser.add_argument("--sample", type=int, default=3, help="Pumps whose queries are listed (default 3).")
        parser.add_argument(
            "--keep",
            action="store_true",
            help="Commit the synthetic clinic instead of rolling it back (it stays in the database).",
        )

    def handle(self, *args, pumps, refills, sample, keep, **options):
        if pumps < 1 or refills < 1:
            raise CommandError("--pumps and --refills must be at least 1.")
        self._warn(keep)
        now = timezone.now().replace(microsecond=0)
        tag = benchdata.run_tag()
        # DEBUG makes Django log every statement's SQL; production does not, so neither do we.
        with override_settings(DEBUG=False), transaction.atomic():
            bench = benchdata.create_clinic(tag)
            self.stdout.write(f"{bench.name}: {pumps:,} synthetic pumps, {refills} refills each ({connection.vendor})")
            with benchdata.measured() as build:
                rows = benchdata.build_pumps(
                    bench, pumps, benchdata.refill_history_adder(bench, now, refills), progress=self._progress
                )
            self.stdout.write(
                f"  built      {rows:>9,} rows in {build.seconds:7.2f} s ({rows / build.seconds:,.0f} rows/s)"
            )

            queryset = Pump.objects.filter(patient__clinic=bench.clinic).select_related(
                "pump_model", "patient", "patient__clinic"
            )
            # The bulk path (a clinic's settings changed): one call, one projections_changed signal.
            with benchdata.measured() as first:
                services.recompute_projections(queryset, now)
            self._line("first projection, services.recompute_projections (inserts; one signal)", pumps, first)

            # The refill path: record_refill stores each pump's projection with recompute_projection.
            loaded = list(queryset)
            with benchdata.measured() as again:
                for pump in loaded:
                    services.recompute_projection(pump, now)
            self._line("recompute, services.recompute_projection per pump (updates)", pumps, again)
            self._sample(loaded[: max(sample, 0)], now)

            if not keep:
                transaction.set_rollback(True)
        if keep:
            self.stdout.write(self.style.WARNING(f"Kept: {bench.name} (synthetic) stays in the database."))
        elif Clinic.objects.filter(name=bench.name).exists():  # pragma: no cover - the rollback failed
            raise CommandError(f"{bench.name} is still in the database after the rollback.")
        else:
            self.stdout.write(self.style.SUCCESS("Rolled back: nothing of this run was kept."))
            if warning := benchdata.dead_rows_warning():
                self.stdout.write(self.style.WARNING(warning))

    def _warn(self, keep):
        lines = [
            "Benchmark: synthetic data in one transaction, "
            + ("COMMITTED at the end (--keep)." if keep else "rolled back at the end."),
        ]
        if connection.vendor == "sqlite":
            lines.append("SQLite: the database write lock is held for the whole run; other processes wait.")
        if keep:
            lines.append(
                "The kept clinic's pumps raise real alerts for its synthetic staff (no email addresses: in-app "
                "only); its rows were bulk-created, so they have no history rows."
            )
        for line in lines:
            self.stdout.write(self.style.WARNING(line))

    def _progress(self, what, done, total):
        self.stdout.write(f"  … {done:,}/{total:,} {what}")

    def _line(self, label, count, measurement):
        rate, queries = measurement.per(count)
        self.stdout.write(f"  {label}:")
        self.stdout.write(
            f"             {count:>9,} pumps in {measurement.seconds:7.2f} s (cpu {measurement.cpu_seconds:.2f} s) — "
            f"{rate:,.0f} pumps/s — {queries:.2f} queries/pump ({measurement.queries:,} queries)"
        )

    def _sample(self, pumps, now):
        counts = []
        for pump in pumps:
            with CaptureQueriesContext(connection) as captured:
                services.recompute_projection(pump, now)
            counts.append(len(captured))
            described = Counter(benchdata.describe_query(q["sql"]) for q in captured.captured_queries)
        if not counts:
            return
        self.stdout.write(f"  queries of one pump's recompute_projection (sample of {len(counts)}): {counts}")
        for what, n in described.items():
            self.stdout.write(f"             {n} × {what}")
