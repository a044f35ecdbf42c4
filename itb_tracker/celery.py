"""The Celery app: a Redis broker in production, kombu's filesystem broker in development.

Settings (CELERY_* in settings.py): late acks and reject-on-worker-lost so a killed worker's task
is redelivered, prefetch 1, JSON only, a visibility timeout above every countdown.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "itb_tracker.settings")

app = Celery("itb_tracker")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="itb_tracker.ping")
def ping(token: str) -> dict:
    """Answer with the worker's process id: proves a real broker round trip."""
    return {"token": token, "pid": os.getpid()}
