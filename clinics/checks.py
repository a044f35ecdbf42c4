"""System checks for settings that would silently break alerting if wrong."""

from django.conf import settings
from django.core import checks


@checks.register(checks.Tags.compatibility)
def celery_visibility_timeout_above_countdowns(app_configs, **kwargs):
    url = getattr(settings, "CELERY_BROKER_URL", "") or ""
    if not url.startswith(("redis://", "rediss://")):
        return []
    timeout = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout", 3600)
    if timeout <= settings.CELERY_MAX_COUNTDOWN_SECONDS:
        return [
            checks.Error(
                "CELERY_VISIBILITY_TIMEOUT must be above CELERY_MAX_COUNTDOWN_SECONDS: Redis would "
                "redeliver a task whose countdown outlasts the visibility timeout (a duplicate send).",
                id="itb.E001",
            )
        ]
    return []
