"""Benchmark the main pages: for each clinic size, build that many synthetic pumps with refill
histories and stored projections, raise their alerts with one scan (as of a month ahead, so about
a third of the pumps have one), then request every main page
as a logged-in nurse through the whole middleware stack (sessions, CSRF, CSP, idle timeout, axes)
and print the median time of ``--requests`` requests, the page's queries, and its ratio to the
login page measured in the same run. Then each page's time and queries at the largest size
against the smallest.

Goals (printed, not asserted in timed tests): every main page within 5× the login page, the
status fragment (what every signed-in request pays) within 2×; the same queries at every size;
time at the largest size within 1.3× of the smallest.

Each size runs in one transaction that is rolled back: nothing is kept, no message is sent.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.staticfiles.storage import staticfiles_storage
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.test import Client
from django.test.utils import override_settings
from django.utils import timezone

from alerts import engine
from alerts.models import Alert
from patients import benchdata, services
from patients.models import Pump

PAGE_GOAL = 5.0
STATUS_GOAL = 2.0
SIZE_TIME_GOAL = 1.3
WARM_UP = 3
ALERTS_AHEAD = timedelta(days=30)


@dataclass
class PageResult:
    name: str
    path: str
    median_ms: float
    queries: int
    status: int


def page_paths(bench, pump: Pump, alert: Alert) -> list[tuple[str, str]]:
    """(name, path) of every main page, for a pump and an alert of the benchmark clinic."""
    return [
        ("worklist", "/"),
        ("pump page", f"/pumps/{pump.pk}/"),
        ("refill form", f"/pumps/{pump.pk}/refill/"),
        ("patient page", f"/patients/{pump.patient_id}/"),
        ("schedule", "/schedule/"),
        ("inbox", "/alerts/"),
        ("alert page", f"/alerts/{alert.pk}/"),
        ("status fragment", "/alerts/status/"),
    ]


def time_page(client: Client, path: str, requests: int, **headers) -> PageResult:
    """Median milliseconds of ``requests`` GETs (after a warm-up) and the queries of one."""
    for _ in range(WARM_UP):
        client.get(path, headers=headers)
    # Counted by a wrapper: the test client's request_started signal empties connection.queries.
    counter = benchdata.QueryCounter()
    with connection.execute_wrapper(counter):
        response = client.get(path, headers=headers)
    seconds = []
    for _ in range(requests):
        start = time.perf_counter()
        client.get(path, headers=headers)
        seconds.append(time.perf_counter() - start)
    return PageResult("", path, statistics.median(seconds) * 1000, counter.count, response.status_code)


def measure_size(size: int, requests: int, *, refills: int = 3, progress=None) -> tuple[PageResult, list[PageResult]]:
    """(login page, main pages) for a synthetic clinic of ``size`` pumps; rolled back."""
    now = timezone.now().replace(microsecond=0)
    with transaction.atomic():
        bench = benchdata.create_clinic(benchdata.run_tag())
        benchdata.build_pumps(bench, size, benchdata.refill_history_adder(bench, now, refills), progress=progress)
        pumps = Pump.objects.filter(patient__clinic=bench.clinic).select_related("pump_model", "patient__clinic")
        services.recompute_projections(pumps, now)
        # A scan as of a month ahead raises the alerts of every pump due by then (about a third of
        # them), so the inbox, the alert page and the worklist carry a clinic's worst day; a tiny
        # clinic may need a later scan before it has any alert at all.
        alert = None
        for months in range(1, 7):
            engine.run_scan(now + months * ALERTS_AHEAD)
            alert = Alert.objects.filter(clinic=bench.clinic).order_by("-severity", "pk").first()
            if alert is not None:
                break
        if alert is None:
            raise CommandError("The synthetic clinic raised no alert: cannot time the alert page.")
        nurse = bench.nurses[0]
        pump = alert.pump

        anonymous = Client()
        login = time_page(anonymous, "/login/", requests)
        login.name = "login page"
        client = Client()
        client.force_login(nurse)
        pages = []
        for name, path in page_paths(bench, pump, alert):
            headers = {"HX-Request": "true"} if name == "status fragment" else {}
            result = time_page(client, path, requests, **headers)
            result.name = name
            pages.append(result)
        transaction.set_rollback(True)
    return login, pages


class Command(BaseCommand):
    help = "Time every main page at several clinic sizes (rolled back) against the login page."

    def add_arguments(self, parser):
        parser.add_argument("--sizes", default="30,10000", help="Pump counts, comma-separated (default 30,10000).")
        parser.add_argument("--requests", type=int, default=30, help="Timed requests per page (default 30).")

    def handle(self, *args, sizes, requests, **options):
        try:
            sizes = [int(size) for size in sizes.split(",") if size.strip()]
        except ValueError:
            raise CommandError("--sizes takes pump counts separated by commas, e.g. 30,10000.")
        if not sizes or min(sizes) < 1 or requests < 1:
            raise CommandError("--sizes needs counts of 1 or more and --requests at least 1.")
        self.stdout.write(
            self.style.WARNING(f"Benchmark: synthetic clinics, each rolled back at the end ({connection.vendor}).")
        )
        try:
            staticfiles_storage.url("css/app.css")
        except ValueError:
            raise CommandError(
                "The static files manifest is missing: run `manage.py collectstatic` first (as production does), "
                "or set STATICFILES_STORAGE=django.contrib.staticfiles.storage.StaticFilesStorage."
            )
        if settings.DEBUG:
            self.stdout.write(
                self.style.WARNING(
                    "DEBUG is on: templates render with debug information, slower than in production. "
                    "For production figures run with DEBUG=false SECRET_KEY=… (the data is synthetic and rolled back)."
                )
            )
        results = {}
        # Production settings for what a request pays: no SQL logging, the test client's host allowed,
        # no HTTPS redirect (the test client speaks plain HTTP).
        with override_settings(
            DEBUG=False, ALLOWED_HOSTS=["testserver"], SECURE_SSL_REDIRECT=False, SESSION_COOKIE_SECURE=False
        ):
            for size in sizes:
                login, pages = measure_size(size, requests, progress=self._progress)
                results[size] = (login, pages)
                self._table(size, login, pages)
        if len(sizes) > 1:
            self._compare(results[sizes[0]], results[sizes[-1]], sizes[0], sizes[-1])

    def _progress(self, what, done, total):
        self.stdout.write(f"  … {done:,}/{total:,} {what}")

    def _table(self, size, login, pages):
        self.stdout.write(f"{size:,} pumps: login page {login.median_ms:.2f} ms, {login.queries} queries")
        self.stdout.write(f"  {'page':<16} {'ms':>8} {'queries':>8} {'× login':>8}  goal")
        for page in pages:
            ratio = page.median_ms / login.median_ms
            goal = STATUS_GOAL if page.name == "status fragment" else PAGE_GOAL
            verdict = "met" if ratio <= goal else "NOT met"
            status = "" if page.status == 200 else f"  (HTTP {page.status})"
            self.stdout.write(
                f"  {page.name:<16} {page.median_ms:>8.2f} {page.queries:>8} {ratio:>8.1f}"
                f"  ≤{goal:g}× {verdict}{status}"
            )

    def _compare(self, small, large, small_size, large_size):
        self.stdout.write(
            f"{large_size:,} against {small_size:,} pumps (goals: same queries, time ≤{SIZE_TIME_GOAL:g}×):"
        )
        for before, after in zip(small[1], large[1], strict=True):
            ratio = after.median_ms / before.median_ms
            same = "same queries" if after.queries == before.queries else f"queries {before.queries} → {after.queries}"
            verdict = "met" if ratio <= SIZE_TIME_GOAL and after.queries == before.queries else "NOT met"
            self.stdout.write(f"  {after.name:<16} time ×{ratio:.2f}  {same:<20} {verdict}")
