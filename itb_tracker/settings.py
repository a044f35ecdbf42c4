"""Settings for ITB Tracker, read from the environment (django-environ).

Every value a deployment may change comes from an environment variable with a
development default: SQLite under var/, kombu's filesystem broker, console email.
"""

import ipaddress
from datetime import timedelta
from pathlib import Path

import environ
from csp.constants import NONE, SELF

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("ITB_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env(
    DEBUG=(bool, False),
    ALLOWED_HOSTS=(list, ["localhost", "127.0.0.1", "[::1]"]),
)
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env("DEBUG")
SECRET_KEY = env("SECRET_KEY", default="dev-insecure-change-me" if DEBUG else None) or ""
ALLOWED_HOSTS = env("ALLOWED_HOSTS")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# Absolute base URL used in emails, webhooks and calendar feeds (they carry links, never names).
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rules.apps.AutodiscoverRulesConfig",
    "simple_history",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "csp",
    "crispy_forms",
    "crispy_bootstrap5",
    "django_htmx",
    "rest_framework",
    "knox",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "clinics",
    "accounts",
    "patients",
    "alerts",
    "reports",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "clinics.middleware.IdleSessionTimeoutMiddleware",
    "clinics.middleware.PagesLoginRequiredMiddleware",
    "clinics.middleware.NoStoreMiddleware",
    # Forced password change and two-factor enrolment before anything else; session records.
    "accounts.middleware.AccountGateMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    # django-axes must come last (STACK.md).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "itb_tracker.urls"
WSGI_APPLICATION = "itb_tracker.wsgi.application"
ASGI_APPLICATION = "itb_tracker.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "csp.context_processors.nonce",
                "alerts.context_processors.alerting",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'itb.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share one SQLite file in development: WAL lets readers run beside a
    # writer, IMMEDIATE takes the write lock up front (no upgrade deadlocks), the timeout waits.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Authentication and sessions ---------------------------------------------
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "rules.permissions.ObjectPermissionBackend",
    "clinics.backends.PasswordBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# A clinical workstation left unattended logs itself out after this idle time.
SESSION_IDLE_TIMEOUT = timedelta(minutes=env.int("SESSION_IDLE_MINUTES", default=30))
SESSION_COOKIE_AGE = env.int("SESSION_MAX_AGE_SECONDS", default=12 * 3600)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"

# Failed logins: 5 tries per username and address, then a 15-minute cool-off.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"

# --- Staff accounts: two-factor sign-in, password reset (accounts/, README "Staff accounts") ---
# Clinic admins and superusers must sign in with an authenticator code (`make run` turns it off
# for the fictional demo clinic). A clinic setting extends it to all of that clinic's staff.
MFA_REQUIRED_FOR_ADMINS = env.bool("MFA_REQUIRED_FOR_ADMINS", default=True)
OTP_TOTP_ISSUER = env.str("OTP_TOTP_ISSUER", default="ITB Tracker")
# Wrong codes count in django-axes with wrong passwords (one lockout rule); django-otp's own
# per-device back-off would silently refuse a right code typed just after a wrong one.
OTP_TOTP_THROTTLE_FACTOR = 0
# A reset link works once (Django's token covers the password hash) and for this long.
PASSWORD_RESET_TIMEOUT = env.int("PASSWORD_RESET_MINUTES", default=60) * 60

# --- Security headers ----------------------------------------------------------
# Production (DEBUG off) is HTTPS by default: secure cookies, HSTS, redirect. A plain-HTTP lab
# install opts out explicitly with HTTPS=false.
HTTPS = env.bool("HTTPS", default=not DEBUG)
SECURE_SSL_REDIRECT = HTTPS
# Load-balancer probes may come over plain HTTP inside the network: answer them, do not redirect.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("BEHIND_PROXY", default=False) else None
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

# --- Internationalisation: store UTC, show each clinic's zone -----------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files --------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": env.str(
            "STATICFILES_STORAGE",
            default="django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage",
        )
    },
}

CRISPY_ALLOWED_TEMPLATE_PACKS = "bootstrap5"
CRISPY_TEMPLATE_PACK = "bootstrap5"

# --- Email -----------------------------------------------------------------------
EMAIL_CONFIG = env.email("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="ITB Tracker <itb-tracker@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# Error reports never leave by mail (they could carry patient data); they go to the log,
# and the reporter below strips request data from any report that is rendered.
ADMINS = []
DEFAULT_EXCEPTION_REPORTER = "itb_tracker.errors.NoRequestDataExceptionReporter"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        # Replaces Django's default "django" logger config, whose AdminEmailHandler would mail reports.
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
        # Apprise logs destination URLs (tokens, topics): nothing of it reaches the log. Its warnings
        # are read in memory (apprise.LogCapture) to tell a 4xx from a 5xx, then dropped.
        "apprise": {"handlers": [], "level": "CRITICAL", "propagate": False},
    },
}

# --- Celery ------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "control_folder": str(_broker_dir / "control"),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
    }
    for _folder in ("queue", "control", "processed"):
        (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)
else:
    # With Redis an unacknowledged task is redelivered after the visibility timeout; it must
    # stay above every countdown we use (a system check enforces it), or a delayed task would
    # be delivered twice. Deadlines live in the database, so countdowns stay short.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600),
        # Fail fast when Redis is down: the outbox keeps the work for the next scan.
        "socket_connect_timeout": 5,
        "socket_timeout": 10,
    }
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=None)
CELERY_TASK_IGNORE_RESULT = CELERY_RESULT_BACKEND is None
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_QUEUE", default="itb")
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
# Longest countdown any task is enqueued with (retry back-off is capped to it).
CELERY_MAX_COUNTDOWN_SECONDS = env.int("CELERY_MAX_COUNTDOWN_SECONDS", default=900)
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# --- Alerting -------------------------------------------------------------------------
ALERT_SCAN_SECONDS = env.int("ALERT_SCAN_SECONDS", default=300)
# A claimed escalation step is retried after this long if its scanner died mid-step.
ALERT_STEP_LEASE_SECONDS = env.int("ALERT_STEP_LEASE_SECONDS", default=300)
# A delivery not finished within its lease (a killed worker) is taken up again by the scan.
NOTIFICATION_LEASE_SECONDS = env.int("NOTIFICATION_LEASE_SECONDS", default=120)
# A pending notification handed to the broker but not consumed within this long is enqueued again.
NOTIFICATION_REQUEUE_SECONDS = env.int("NOTIFICATION_REQUEUE_SECONDS", default=600)
NOTIFICATION_MAX_ATTEMPTS = env.int("NOTIFICATION_MAX_ATTEMPTS", default=5)
# A nurse-entered dose order not countersigned by a physician within this many hours escalates
# as a physician review (alert kind ``order_unsigned``).
ORDER_COUNTERSIGN_HOURS = env.int("ORDER_COUNTERSIGN_HOURS", default=24)
WEBHOOK_ALLOW_PRIVATE = env.bool("WEBHOOK_ALLOW_PRIVATE", default=False)
# On-premises receivers inside the hospital network: the operator admits their networks (CIDRs);
# anything else must be a public address. Parsed here so a typo stops the app at start.
WEBHOOK_ALLOWED_NETWORKS = [
    str(ipaddress.ip_network(cidr, strict=False)) for cidr in env.list("WEBHOOK_ALLOWED_NETWORKS", default=[])
]
# A CA bundle (PEM) added to the system's for webhook certificates (a hospital's own CA).
WEBHOOK_CA_FILE = env.str("WEBHOOK_CA_FILE", default="")
HEARTBEAT_URL = env.str("HEARTBEAT_URL", default="")
# Bearer token for /metrics (Prometheus); the endpoint answers 404 while it is unset.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# Hours with nobody on call in the next 14 days are looked for this often (and after every rota change).
ROTA_GAP_CHECK_SECONDS = env.int("ROTA_GAP_CHECK_SECONDS", default=3600)
# Personal contact methods (push, SMS, chat) through apprise: the URL schemes members may add.
# msteams is kept for operators who pin an apprise that still parses it (2.2 answers "workflows").
NOTIFY_ALLOWED_SCHEMES = [
    s.strip().lower()
    for s in env.list(
        "NOTIFY_ALLOWED_SCHEMES", default=["ntfy", "ntfys", "pover", "twilio", "msteams", "slack", "json", "jsons"]
    )
    if s.strip()
]
# Fernet keys (comma-separated, newest first) that encrypt contact-method URLs at rest: the first
# encrypts, every one decrypts (MultiFernet), so a key is rotated by putting a new one in front,
# running `manage.py rotate_notify_keys` and then dropping the old one. Under DEBUG (and in tests)
# a fixed development key stands in; without DEBUG there is no default (a system check says so).
NOTIFY_DEV_ENCRYPTION_KEY = "aXRiLXRyYWNrZXItZGV2LW9ubHkta2V5LTAwMDAwMDA="
NOTIFY_ENCRYPTION_KEYS = env.list("NOTIFY_ENCRYPTION_KEYS", default=[NOTIFY_DEV_ENCRYPTION_KEY] if DEBUG else [])
# Apprise connects and reads with these timeouts (seconds); a timeout is a transient failure.
NOTIFY_TIMEOUT_SECONDS = env.float("NOTIFY_TIMEOUT_SECONDS", default=8.0)
# A method failing this many deliveries in a row is suspended until its owner verifies it again.
NOTIFY_SUSPEND_AFTER_FAILURES = env.int("NOTIFY_SUSPEND_AFTER_FAILURES", default=5)
# The monthly report digest (reports/digest.py) is looked for this often; it leaves at the clinic's
# opening time on its first open day of the month, so the delay is at most this long.
REPORT_DIGEST_CHECK_SECONDS = env.int("REPORT_DIGEST_CHECK_SECONDS", default=900)
CELERY_BEAT_SCHEDULE = {
    "alert-scan": {
        "task": "alerts.scan",
        "schedule": ALERT_SCAN_SECONDS,
        # A scan that waited a whole period in the queue is stale: the next one supersedes it.
        "options": {"expires": ALERT_SCAN_SECONDS},
    },
    "rota-gaps": {
        "task": "alerts.rota_gaps",
        "schedule": ROTA_GAP_CHECK_SECONDS,
        "options": {"expires": ROTA_GAP_CHECK_SECONDS},
    },
    "report-digests": {
        "task": "reports.digests",
        "schedule": REPORT_DIGEST_CHECK_SECONDS,
        "options": {"expires": REPORT_DIGEST_CHECK_SECONDS},
    },
}

# --- REST API ----------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "knox.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "COERCE_DECIMAL_TO_STRING": False,
    "DEFAULT_THROTTLE_RATES": {"token": env.str("TOKEN_THROTTLE_RATE", default="10/min")},
}
REST_KNOX = {
    "TOKEN_TTL": timedelta(hours=env.int("API_TOKEN_HOURS", default=10)),
    "AUTO_REFRESH": False,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "ITB Tracker API",
    "DESCRIPTION": "Intrathecal baclofen pump refills: pumps, refills, projections, alerts.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "AppointmentKindEnum": "patients.models.Appointment.Kind",
        "PumpEventKindEnum": "patients.models.PumpEvent.Kind",
        "AppointmentStatusEnum": "patients.models.Appointment.Status",
        "PatientStatusEnum": "patients.models.Patient.Status",
        "PumpStatusEnum": "patients.models.Pump.Status",
        "ExplantReasonEnum": "patients.models.Pump.ExplantReason",
        # The projection and the handover summary both give it.
        "ProjectionStatusEnum": "patients.depletion.STATUSES",
    },
}

# --- Application -------------------------------------------------------------------
# Username of the account that history records as the actor of tasks and commands.
SYSTEM_USERNAME = "itb-system"
# History is read, never edited: no "revert to this version" in the admin.
SIMPLE_HISTORY_REVERT_DISABLED = True
SIMPLE_HISTORY_EDIT = False
