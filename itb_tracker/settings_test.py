"""Test settings: the real settings with test-only overrides (no services needed by default)."""

import os

os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production-0123456789abcdef")
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
# The test client and live servers speak plain HTTP: the explicit opt-out of production's default.
os.environ["HTTPS"] = "false"

from .settings import *  # noqa: E402,F403
from .settings import DATABASES, VAR_DIR  # noqa: E402

# Under pytest DEBUG is False, and the manifest storage would 404 without collectstatic.
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = False
# A test never reaches a broker unless it starts one on purpose.
CELERY_BROKER_URL = os.environ.get("TEST_CELERY_BROKER_URL", "memory://")
CELERY_BROKER_TRANSPORT_OPTIONS = {}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {"NAME": os.environ.get("TEST_SQLITE_NAME") or None}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "test-celerybeat-schedule")
AXES_ENABLED = True
# Contact-method URLs are encrypted with a fixed test key in tests (DEBUG is off under pytest).
NOTIFY_ENCRYPTION_KEYS = ["dGVzdC1vbmx5LWNvbnRhY3QtbWV0aG9kLWtleS0wMDA="]
