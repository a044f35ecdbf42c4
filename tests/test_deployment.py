"""Production deployment: docker-compose.yml and the Dockerfile run only what the project provides,
the production settings pass ``check --deploy``, and error reports carry no request data.

No Docker engine runs here: the files are read and every command they name is resolved against
the project (the WSGI app imports, the Celery app is found, management commands and their options
parse). The web command and the web health check also run for real, under gunicorn.
"""

import http.client
import importlib
import json
import logging
import os
import re
import shlex
import subprocess
import sys
import time
import uuid
from fnmatch import fnmatch
from pathlib import Path

import pytest
import yaml
from django.core.management import get_commands, load_command_class
from django.test import RequestFactory

from itb_tracker.errors import NoRequestDataExceptionReporter

from .services import free_port, random_secret_key

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
APP_SERVICES = sorted(name for name, service in SERVICES.items() if "build" in service)
DOCKERFILE = (ROOT / "Dockerfile").read_text()
SETTINGS_SOURCE = (ROOT / "itb_tracker" / "settings.py").read_text()
BIN = Path(sys.executable).parent

# What an operator would put in .env (docker-compose.yml lists the required variables).
SAMPLE_DEPLOYMENT_ENV = {
    "SECRET_KEY": random_secret_key(),
    "POSTGRES_PASSWORD": "0123456789abcdef0123456789abcdef",
    "ALLOWED_HOSTS": "itb.example.org",
    "SITE_URL": "https://itb.example.org",
    "EMAIL_URL": "smtp+tls://alerts:app-password@smtp.example.org:587",
    "NOTIFY_ENCRYPTION_KEYS": "ZGVwbG95bWVudC10ZXN0LWtleS0wMDAwMDAwMDAwMDA=",
}


# --- reading the files ----------------------------------------------------------------------


def dockerfile_instructions():
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE)
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, arguments = line.partition(" ")
            yield instruction.upper(), arguments.strip()


def dockerfile_exec_form(instruction):
    values = [arguments for name, arguments in dockerfile_instructions() if name == instruction]
    if not values:
        return []
    value = values[-1]
    assert value.startswith("["), f"{instruction} must use the exec (JSON) form: {value}"
    return json.loads(value)


def service_argv(service):
    """The argv a service's container runs: its entrypoint and command, or the image's."""
    entrypoint = service.get("entrypoint", dockerfile_exec_form("ENTRYPOINT"))
    command = service.get("command", dockerfile_exec_form("CMD"))
    entrypoint = shlex.split(entrypoint) if isinstance(entrypoint, str) else list(entrypoint)
    command = shlex.split(command) if isinstance(command, str) else list(command)
    return entrypoint + command


def interpolate(value: str, env: dict) -> str:
    """Docker Compose variable interpolation: $$, $VAR, ${VAR}, ${VAR:-d}, ${VAR-d}, ${VAR:?e},
    ${VAR?e}, ${VAR:+r}, ${VAR+r}, nested in the default. Raises KeyError where Compose would stop."""
    out, i = [], 0
    while i < len(value):
        if value.startswith("$$", i):
            out.append("$")
            i += 2
        elif value.startswith("${", i):
            depth, j = 1, i + 2  # find the matching brace; defaults may nest ${…}
            while depth:
                if value[j] == "}":
                    depth -= 1
                elif value.startswith("${", j):
                    depth += 1
                    j += 1
                j += 1
            body = value[i + 2 : j - 1]
            name, operator, word = re.fullmatch(r"(\w+)(:?[-?+]?)(.*)", body, re.S).groups()
            present, nonempty = name in env, bool(env.get(name))
            is_set = nonempty if operator.startswith(":") else present
            if operator.endswith("-"):
                out.append(env[name] if is_set else interpolate(word, env))
            elif operator.endswith("?"):
                if not is_set:
                    raise KeyError(f"{name}: {word}")
                out.append(env[name])
            elif operator.endswith("+"):
                out.append(interpolate(word, env) if is_set else "")
            else:
                out.append(env.get(name, ""))
            i = j
        elif (match := re.match(r"\$(\w+)", value[i:])) is not None:
            out.append(env.get(match.group(1), ""))
            i += match.end()
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def container_env(service_name, deployment_env=SAMPLE_DEPLOYMENT_ENV):
    environment = SERVICES[service_name].get("environment", {})
    assert isinstance(environment, dict), "use the mapping form for environment"
    return {name: interpolate(str(value), deployment_env) for name, value in environment.items()}


def clean_env(**variables):
    """A minimal process environment (nothing leaks in from the test run) plus ``variables``."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"), "LANG": "C.UTF-8"}
    env.update(variables)
    return env


# --- docker-compose.yml -----------------------------------------------------------------------


def test_interpolation_helper_follows_compose_rules():
    env = {"A": "a", "EMPTY": ""}
    assert interpolate("${A}-$A-$$A", env) == "a-a-$A"
    assert interpolate("${EMPTY:-d}|${EMPTY-d}|${MISSING-d}", env) == "d||d"
    assert interpolate("${MISSING:-x${A}y}", env) == "xay"
    assert interpolate("${A:+r}|${EMPTY:+r}|${EMPTY+r}", env) == "r||r"
    with pytest.raises(KeyError):
        interpolate("${EMPTY:?required}", env)


def test_compose_defines_the_production_services():
    assert set(SERVICES) == {"web", "worker", "beat", "migrate", "db", "redis"}
    assert set(APP_SERVICES) == {"web", "worker", "beat", "migrate"}
    assert SERVICES["db"]["image"].startswith("postgres:15")
    assert SERVICES["redis"]["image"].startswith("redis:7")
    for name in ("db", "redis"):
        assert "build" not in SERVICES[name]
    db_volume = SERVICES["db"]["volumes"][0].split(":")
    assert db_volume[1] == "/var/lib/postgresql/data"
    assert db_volume[0] in COMPOSE["volumes"], "the database lives on a named volume"


@pytest.mark.parametrize("name", ["db", "redis", "web"])
def test_service_has_a_health_check(name):
    test = SERVICES[name]["healthcheck"]["test"]
    assert isinstance(test, list)
    assert test[0] in {"CMD", "CMD-SHELL"} and len(test) > 1
    assert not SERVICES[name]["healthcheck"].get("disable", False)


def test_health_checks_of_db_and_redis_use_the_images_tools():
    assert SERVICES["db"]["healthcheck"]["test"][1] == "pg_isready"
    assert SERVICES["redis"]["healthcheck"]["test"][1:] == ["redis-cli", "ping"]


def test_migrations_run_before_web_worker_and_beat():
    assert service_argv(SERVICES["migrate"])[:3] == ["python", "manage.py", "migrate"]
    assert SERVICES["migrate"]["restart"] == "no"
    assert SERVICES["migrate"]["depends_on"]["db"]["condition"] == "service_healthy"
    for name in ("web", "worker", "beat"):
        depends_on = SERVICES[name]["depends_on"]
        assert depends_on["migrate"]["condition"] == "service_completed_successfully"
        assert depends_on["redis"]["condition"] == "service_healthy"


def test_web_worker_beat_commands():
    assert service_argv(SERVICES["web"])[:2] == ["gunicorn", "itb_tracker.wsgi:application"]
    assert service_argv(SERVICES["worker"])[:4] == ["celery", "-A", "itb_tracker", "worker"]
    assert service_argv(SERVICES["beat"])[:4] == ["celery", "-A", "itb_tracker", "beat"]


def _check_gunicorn(argv):
    from gunicorn.config import Config

    options = Config().parser().parse_args(argv[1:])  # unknown options exit (SystemExit)
    assert len(options.args) == 1, argv
    module_name, _, attribute = options.args[0].partition(":")
    application = getattr(importlib.import_module(module_name), attribute)
    assert callable(application)
    assert (ROOT / (module_name.replace(".", "/") + ".py")).is_file()


def _check_celery(argv):
    from celery.app.utils import find_app
    from celery.bin.base import CLIContext
    from celery.bin.celery import celery as celery_cli

    assert argv[1] in {"-A", "--app"}, "the app comes first: celery -A itb_tracker <command>"
    app = find_app(argv[2])
    assert app.main == "itb_tracker"
    command = celery_cli.commands[argv[3]]
    # click parses the options exactly as the container would (an unknown option raises).
    command.make_context(argv[3], list(argv[4:]), obj=CLIContext(app=app, no_color=True, workdir=None, quiet=True))


def _check_manage_py(argv):
    assert argv[:2] == ["python", "manage.py"]
    assert (ROOT / "manage.py").is_file()
    name, options = argv[2], argv[3:]
    commands = get_commands()
    assert name in commands, f"manage.py has no command {name!r}"
    load_command_class(commands[name], name).create_parser("manage.py", name).parse_args(options)


@pytest.mark.parametrize("name", APP_SERVICES)
def test_service_command_is_one_the_project_provides(name):
    argv = service_argv(SERVICES[name])
    checker = {"gunicorn": _check_gunicorn, "celery": _check_celery, "python": _check_manage_py}.get(argv[0])
    assert checker is not None, f"{name}: unknown program {argv[0]!r}"
    checker(argv)


def test_app_services_share_one_image_and_production_environment():
    images = {SERVICES[name]["image"] for name in APP_SERVICES}
    assert len(images) == 1
    for name in APP_SERVICES:
        service = SERVICES[name]
        assert service["build"] == "."
        env = service["environment"]
        assert env["DEBUG"] == "false"
        assert env["DJANGO_SETTINGS_MODULE"] == "itb_tracker.settings"
        assert env["CELERY_BROKER_URL"] == "redis://redis:6379/0"
        assert env["SECRET_KEY"].startswith("${SECRET_KEY:?"), "SECRET_KEY must be required, never defaulted"
        for variable in ("DATABASE_URL", "EMAIL_URL", "ALLOWED_HOSTS", "HTTPS", "SITE_URL", "BEHIND_PROXY"):
            assert f"${{{variable}" in env[variable], f"{name}: {variable} comes from the deployment's variables"


def test_every_variable_passed_to_the_app_is_read_by_the_settings():
    names = set().union(*(SERVICES[name]["environment"] for name in APP_SERVICES))
    unread = {
        name
        for name in names - {"DJANGO_SETTINGS_MODULE"}
        if f'"{name}"' not in SETTINGS_SOURCE and f"{name}=(" not in SETTINGS_SOURCE
    }
    assert not unread, f"settings.py reads none of {sorted(unread)}"


def test_required_variables_stop_compose():
    for missing in ("SECRET_KEY", "ALLOWED_HOSTS", "SITE_URL", "EMAIL_URL"):
        env = {k: v for k, v in SAMPLE_DEPLOYMENT_ENV.items() if k != missing}
        with pytest.raises(KeyError, match=missing):
            container_env("web", env)
    env = {k: v for k, v in SAMPLE_DEPLOYMENT_ENV.items() if k != "POSTGRES_PASSWORD"}
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        container_env("db", env)


def test_compose_database_url_reaches_the_db_service():
    env = container_env("web")
    db_env = container_env("db")
    expected = f"postgres://{db_env['POSTGRES_USER']}:{db_env['POSTGRES_PASSWORD']}@db:5432/{db_env['POSTGRES_DB']}"
    assert env["DATABASE_URL"] == expected
    assert container_env("web", {**SAMPLE_DEPLOYMENT_ENV, "DATABASE_URL": "postgres://x@y/z"})["DATABASE_URL"] == (
        "postgres://x@y/z"
    )


def test_web_port_is_published_on_loopback_for_the_proxy_by_default():
    (port,) = SERVICES["web"]["ports"]
    assert interpolate(port, {}) == "127.0.0.1:8000:8000"


# --- Dockerfile ------------------------------------------------------------------------------


def dockerignored(path: str) -> bool:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    parts = Path(path).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        pattern = pattern.removeprefix("**/")
        if any(fnmatch(prefix, pattern) or fnmatch(Path(prefix).name, pattern) for prefix in prefixes):
            return True
    return False


def test_dockerfile_base_user_and_static_files():
    instructions = list(dockerfile_instructions())
    assert instructions[0] == ("FROM", "python:3.11-slim")
    users = [arguments for name, arguments in instructions if name == "USER"]
    assert users and users[-1] not in {"root", "0"}, "the image runs as a non-root user"
    runs = " ".join(arguments for name, arguments in instructions if name == "RUN")
    assert "pip install -r requirements.txt -c constraints.txt" in runs
    assert "manage.py collectstatic" in runs
    assert not dockerfile_exec_form("ENTRYPOINT"), "no entrypoint: services run their command as is"


def test_dockerfile_copies_and_runs_files_that_exist_and_reach_the_build():
    for name, arguments in dockerfile_instructions():
        if name == "COPY":
            *sources, _destination = shlex.split(arguments)
            for source in sources:
                if source != ".":
                    assert (ROOT / source).exists(), source
                    assert not dockerignored(source), f"{source} is excluded by .dockerignore"
    needed = ["manage.py", "itb_tracker/wsgi.py", "itb_tracker/celery.py", "itb_tracker/settings.py", "static"]
    for path in needed:
        assert (ROOT / path).exists(), path
        assert not dockerignored(path), f"{path} is excluded by .dockerignore"
    for path in [".env", ".venv", "var", ".git", "staticfiles", "tests/factories.py"]:
        assert dockerignored(path), f"{path} must stay out of the image"


def test_image_installs_the_programs_the_services_run():
    requirements = (ROOT / "requirements.txt").read_text()
    for program in ("gunicorn", "celery"):
        assert re.search(rf"^{program}(\[[^\]]*\])?==", requirements, re.M), program
        assert (BIN / program).exists()


# --- production settings ---------------------------------------------------------------------


def _check_deploy(env, tmp_path):
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=clean_env(ITB_VAR_DIR=str(tmp_path), **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_production_variables(tmp_path):
    env = {
        "DJANGO_SETTINGS_MODULE": "itb_tracker.settings",
        "DEBUG": "false",
        "SECRET_KEY": random_secret_key(),
        "HTTPS": "true",
        "ALLOWED_HOSTS": "itb.example.org",
        "NOTIFY_ENCRYPTION_KEYS": SAMPLE_DEPLOYMENT_ENV["NOTIFY_ENCRYPTION_KEYS"],
    }
    result = _check_deploy(env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_passes_with_debug_off_and_no_https_variable(tmp_path):
    """Production defaults are secure: nobody has to remember HTTPS=true."""
    env = {
        "DJANGO_SETTINGS_MODULE": "itb_tracker.settings",
        "DEBUG": "false",
        "SECRET_KEY": random_secret_key(),
        "ALLOWED_HOSTS": "itb.example.org",
        "NOTIFY_ENCRYPTION_KEYS": SAMPLE_DEPLOYMENT_ENV["NOTIFY_ENCRYPTION_KEYS"],
    }
    result = _check_deploy(env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    shown = _settings(env, tmp_path, "SESSION_COOKIE_SECURE CSRF_COOKIE_SECURE SECURE_HSTS_SECONDS SECURE_SSL_REDIRECT")
    assert shown == ["True", "True", "31536000", "True"]


def test_https_false_is_the_explicit_opt_out_for_a_plain_http_lab(tmp_path):
    env = {
        "DJANGO_SETTINGS_MODULE": "itb_tracker.settings",
        "DEBUG": "false",
        "SECRET_KEY": random_secret_key(),
        "ALLOWED_HOSTS": "lab.example.org",
        "HTTPS": "false",
    }
    shown = _settings(env, tmp_path, "SESSION_COOKIE_SECURE CSRF_COOKIE_SECURE SECURE_HSTS_SECONDS SECURE_SSL_REDIRECT")
    assert shown == ["False", "False", "0", "False"]


def _settings(env, tmp_path, names: str) -> list[str]:
    code = (
        "import django; django.setup(); from django.conf import settings; "
        f"print(*[getattr(settings, n) for n in {names.split()!r}])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=clean_env(ITB_VAR_DIR=str(tmp_path), **env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_check_deploy_is_clean_with_the_compose_environment(tmp_path):
    result = _check_deploy(container_env("web"), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_deploy_warns_without_a_notify_key(tmp_path):
    env = {**container_env("web")}
    del env["NOTIFY_ENCRYPTION_KEYS"]
    result = _check_deploy(env, tmp_path)
    assert result.returncode != 0 and "itb.W101" in result.stdout + result.stderr


def test_check_deploy_fails_with_the_development_notify_key(tmp_path):
    from django.conf import settings

    env = {**container_env("web"), "NOTIFY_ENCRYPTION_KEYS": settings.NOTIFY_DEV_ENCRYPTION_KEY}
    result = _check_deploy(env, tmp_path)
    assert result.returncode != 0 and "itb.E102" in result.stdout + result.stderr


def test_check_deploy_fails_without_https(tmp_path):
    """The check is a real gate: the same variables without HTTPS do not pass."""
    env = {**container_env("web"), "HTTPS": "false"}
    result = _check_deploy(env, tmp_path)
    assert result.returncode != 0
    assert "security.W" in result.stdout + result.stderr


# --- the web command and health check, for real ----------------------------------------------


@pytest.fixture(scope="module")
def gunicorn_web(tmp_path_factory):
    """The image's web command under gunicorn, with the compose web environment and collected static files."""
    tmp_path = tmp_path_factory.mktemp("web")
    static_root = tmp_path / "static"
    env = clean_env(
        **{
            **container_env("web"),
            # No database server here: SQLite in a scratch folder, migrated as compose's migrate
            # service does before web starts (the health check asks /readyz).
            "DATABASE_URL": f"sqlite:///{tmp_path / 'web.sqlite3'}",
            "ITB_VAR_DIR": str(tmp_path),
            "STATIC_ROOT": str(static_root),
            "PORT": str(free_port()),
        }
    )
    for command in (["collectstatic", "--no-input"], ["migrate", "--no-input"]):
        subprocess.run(
            [sys.executable, "manage.py", *command, "--verbosity", "0"],
            cwd=ROOT,
            env=env,
            check=True,
            timeout=300,
        )
    argv = service_argv(SERVICES["web"])
    log_path = tmp_path / "gunicorn.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(BIN / argv[0]), *argv[1:]],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        # Ready once a worker has booted and answers (the socket listens before that; on a busy
        # machine booting three workers takes a while, as the compose start_period allows for).
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                _get(env, "/login/", timeout=30)
                break
            except OSError:
                assert time.monotonic() < deadline, "gunicorn did not answer within 90 s:\n" + log_path.read_text()
                time.sleep(0.2)
        yield env, static_root, log_path
    finally:
        from .services import _terminate

        _terminate(process, 15)


def _get(env, path, timeout=10):
    conn = http.client.HTTPConnection("127.0.0.1", int(env["PORT"]), timeout=timeout)
    conn.request("GET", path, headers={"Host": env["ALLOWED_HOSTS"], "X-Forwarded-Proto": "https"})
    response = conn.getresponse()
    return response, response.read()


@pytest.mark.services
@pytest.mark.xdist_group("services")
def test_web_health_check_passes_against_the_real_web_command(gunicorn_web):
    env, _static_root, log_path = gunicorn_web
    test = SERVICES["web"]["healthcheck"]["test"]
    assert test[:2] == ["CMD", "python"]
    result = subprocess.run([sys.executable, *test[2:]], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr + log_path.read_text()
    response, body = _get(env, "/readyz")
    assert response.status == 200 and json.loads(body)["database"] == "ok"
    response, body = _get(env, "/login/")
    assert response.status == 200
    assert response.getheader("Strict-Transport-Security")
    assert response.getheader("Content-Security-Policy")


@pytest.mark.services
@pytest.mark.xdist_group("services")
def test_whitenoise_serves_the_collected_static_files(gunicorn_web):
    env, static_root, _log_path = gunicorn_web
    manifest = json.loads((static_root / "staticfiles.json").read_text())["paths"]
    hashed = manifest["css/app.css"]
    response, body = _get(env, f"/static/{hashed}")
    assert response.status == 200
    assert body == (static_root / hashed).read_bytes()
    assert "immutable" in response.getheader("Cache-Control", "")


# --- error reports ---------------------------------------------------------------------------

# Built at run time: a report shows the source lines around each frame, so a value written
# literally in this file would appear in it whatever the reporter drops.
_MARK = uuid.uuid4().hex[:8]
PATIENT_VALUES = {"family_name": f"Quarterfield{_MARK}", "mrn": f"MRN{_MARK}", "notes": f"lives at {_MARK} Saguaro Way"}
COOKIE_VALUE, HEADER_VALUE = f"cookie{_MARK}", f"header{_MARK}"


def _report(view):
    request = RequestFactory().post(
        "/patients/1/refills/new/?mrn=" + PATIENT_VALUES["mrn"],
        PATIENT_VALUES,
        HTTP_COOKIE=f"sessionid={COOKIE_VALUE}",
        HTTP_X_PATIENT_NAME=HEADER_VALUE,
    )
    try:
        view(request)
    except ValueError:
        reporter = NoRequestDataExceptionReporter(request, *sys.exc_info())
    return reporter.get_traceback_html() + reporter.get_traceback_text()


def _assert_no_request_data(report):
    for value in [*PATIENT_VALUES.values(), COOKIE_VALUE, HEADER_VALUE]:
        assert value not in report, f"{value!r} appears in the error report"
    assert "ValueError" in report, "the report still names the error"


def test_error_report_carries_no_request_data():
    def view(request):
        raise ValueError("refill could not be saved")

    _assert_no_request_data(_report(view))


def test_error_report_carries_no_request_values_held_in_local_variables():
    """A view that read the form before failing still leaks nothing through its frame's variables."""

    def view(request):
        family_name = request.POST["family_name"]
        form_data = request.POST.dict()
        raise ValueError(f"refill could not be saved ({len(family_name)}, {len(form_data)})")

    _assert_no_request_data(_report(view))


def test_no_logging_handler_mails_error_reports():
    from django.conf import settings
    from django.utils.log import AdminEmailHandler

    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in list(logging.Logger.manager.loggerDict))]
    mailing = [
        (logger.name, handler)
        for logger in loggers
        for handler in logger.handlers
        if isinstance(handler, AdminEmailHandler)
    ]
    assert not mailing, f"loggers with an AdminEmailHandler: {mailing}"
    for handler in settings.LOGGING.get("handlers", {}).values():
        assert handler.get("class") != "django.utils.log.AdminEmailHandler"
    assert settings.ADMINS == []
