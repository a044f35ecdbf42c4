"""One escalation pass (for cron or by hand), or ``--loop`` for installs without Celery beat."""

import time

from django.conf import settings
from django.core.management.base import BaseCommand

from alerts import engine, gaps
from alerts.tasks import ping_heartbeat_url


class Command(BaseCommand):
    help = "Raise, escalate and deliver alerts: one pass, or --loop every ALERT_SCAN_SECONDS."

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="Keep scanning until stopped.")
        parser.add_argument("--interval", type=int, default=None, help="Seconds between passes with --loop.")

    def handle(self, *args, loop=False, interval=None, **options):
        interval = interval or settings.ALERT_SCAN_SECONDS
        while True:
            report = gaps.sync_rota_gaps()  # cheap: a few queries, whatever the number of pumps
            summary = engine.run_scan()
            summary.update(rota_gaps_raised=report.raised, rota_gaps_resolved=report.resolved)
            ping_heartbeat_url()
            self.stdout.write(" ".join(f"{key}={value}" for key, value in summary.items()))
            if not loop:
                return
            time.sleep(interval)
