"""Publishing the alerting's Celery tasks, by their registered names.

The scan, the delivery code and the signal receivers enqueue work that ``tasks.py`` runs with
that same code. Publishing by name through the project's Celery app keeps the imports one way
(tasks → engine, delivery → enqueue) instead of a circle. Callers handle a broker outage: every
deadline lives in the database, so the scan's sweeper takes up whatever could not be published.
"""

from __future__ import annotations

from itb_tracker.celery import app

SCAN_TASK = "alerts.scan"
DELIVER_TASK = "alerts.deliver"


def delivery(notification_id: int, countdown: int | None = None) -> None:
    """Ask a worker to deliver one notification (after ``countdown`` seconds: a retry's back-off)."""
    app.send_task(DELIVER_TASK, args=[notification_id], countdown=countdown, retry=False)


def scan() -> None:
    """Ask a worker for a scan now (an emergency should not wait for the next beat)."""
    app.send_task(SCAN_TASK, retry=False)
