"""Helpers for tests that talk to real services: Redis, a Celery worker, free ports.

Rules these helpers follow (STACK.md, "Tests that talk to services"):

- A test that stops or breaks Redis starts its **own** ``redis-server`` on a free port
  (:class:`RedisServer`); the shared one (:func:`shared_redis_url`: ``TEST_REDIS_URL``, default ``redis://127.0.0.1:6379/15``)
  is only ever used, never stopped.
- A Celery worker started by a test (:class:`CeleryWorker`) consumes a queue named for that test
  run and xdist worker (:func:`unique_queue`), so two workers never take each other's tasks.
  Mark such tests ``@pytest.mark.services`` and ``@pytest.mark.xdist_group("services")``.
- A worker subprocess cannot see an in-memory SQLite test database, nor rows inside the test's
  open transaction: a test whose tasks touch the database uses ``transactional_db`` and passes
  ``extra_env=worker_database_env()`` (PostgreSQL, or a file SQLite database via ``TEST_SQLITE_NAME``).
- Nothing here can hang a test: every wait has a timeout, and every process is started in its own
  session so that stopping it also stops its children.

Typical use::

    @pytest.fixture
    def worker(tmp_path):
        broker = require_redis()
        with CeleryWorker(broker, unique_queue(), result_backend=broker, log_dir=tmp_path) as w:
            yield w

    def test_x(worker):
        with celery_client(worker.broker_url, queue=worker.queue, result_backend=worker.result_backend) as app:
            assert app.send_task("itb_tracker.ping", args=["t"]).get(timeout=60)["token"] == "t"
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import quote

import redis
from celery import Celery

from .conftest import service_unavailable

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TEST_REDIS_URL = "redis://127.0.0.1:6379/15"


# --- ports and names -----------------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (bind port 0, read it back, release it).

    Prefer letting a server bind port 0 itself and reading the port back; use this only for
    servers that must be told their port (redis-server, gunicorn).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def unique_queue(prefix: str = "itb-test") -> str:
    """A Celery queue name unique to this test run and xdist worker, e.g. ``itb-test-gw1-3f2a…``."""
    xdist_worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return f"{prefix}-{xdist_worker}-{uuid.uuid4().hex[:12]}"


def random_secret_key() -> str:
    """A production-strength SECRET_KEY (passes ``check --deploy``) for subprocesses."""
    return secrets.token_urlsafe(64)


# --- Redis -----------------------------------------------------------------------------------


def shared_redis_url() -> str:
    """The shared Redis for tests: ``TEST_REDIS_URL``, default ``redis://127.0.0.1:6379/15``."""
    return os.environ.get("TEST_REDIS_URL") or DEFAULT_TEST_REDIS_URL


def redis_reachable(url: str, timeout: float = 2.0) -> bool:
    """True if a Redis server answers PING at ``url`` within ``timeout`` seconds."""
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def require_redis(url: str | None = None) -> str:
    """The shared test Redis URL, or skip the test (fail it on CI) when nothing answers there."""
    url = url or shared_redis_url()
    if not redis_reachable(url):
        service_unavailable(f"no Redis server answers at {url} (set TEST_REDIS_URL)")
    return url


class _ExitedEarly(RuntimeError):
    pass


class RedisServer:
    """A private ``redis-server`` on a free port, for tests that stop, kill or restart Redis.

    It keeps nothing on disk. ``stop()`` / ``kill()`` take it down (a broker outage);
    ``start()`` brings it back on the same port. Use as a context manager or call ``stop()``.
    """

    def __init__(self, port: int | None = None, *, start_timeout: float = 10.0):
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            service_unavailable("redis-server is not installed")
        self.port = port or free_port()
        self.start_timeout = start_timeout
        self.process: subprocess.Popen | None = None
        # A port picked here may be taken by the time the server binds it: the first start then
        # retries on another free port. Once started, the port is kept (restarts reuse it).
        self._may_change_port = port is None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> RedisServer:
        if self.running:
            return self
        for _attempt in range(3):
            try:
                self._start_once()
            except _ExitedEarly:
                if not self._may_change_port:
                    raise
                self.port = free_port()
                continue
            self._may_change_port = False
            return self
        raise RuntimeError("redis-server could not start on a free port (3 tries)")

    def _start_once(self) -> None:
        command = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise _ExitedEarly(f"redis-server on port {self.port} exited with {self.process.returncode}")
            if redis_reachable(self.url(), timeout=0.5):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server on port {self.port} did not answer within {self.start_timeout} s")

    def stop(self, timeout: float = 5.0) -> None:
        """Shut the server down (SIGTERM, then SIGKILL after ``timeout``)."""
        _terminate(self.process, timeout)

    def kill(self) -> None:
        """Kill the server at once (SIGKILL): a crash, not a shutdown."""
        _terminate(self.process, 0)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


# --- databases -------------------------------------------------------------------------------


def database_url(settings_dict: Mapping) -> str:
    """A ``DATABASE_URL`` (django-environ syntax) for a Django database settings dict."""
    engine = settings_dict["ENGINE"]
    if engine.endswith("sqlite3"):
        name = str(settings_dict["NAME"])
        if not name or name == ":memory:" or name.startswith("file:memorydb") or "mode=memory" in name:
            raise RuntimeError(
                "the test database is an in-memory SQLite database, which no subprocess can see: "
                "run on PostgreSQL (DATABASE_URL=postgres://…) or set TEST_SQLITE_NAME to a file"
            )
        return f"sqlite:///{Path(name).resolve()}"
    if engine.endswith("postgresql"):
        user = quote(settings_dict.get("USER") or "", safe="")
        password = quote(settings_dict.get("PASSWORD") or "", safe="")
        credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
        host = settings_dict.get("HOST") or "127.0.0.1"
        port = settings_dict.get("PORT") or "5432"
        return f"postgres://{credentials}{host}:{port}/{quote(settings_dict['NAME'], safe='')}"
    raise RuntimeError(f"no DATABASE_URL form known for {engine}")


def worker_database_env(alias: str = "default") -> dict[str, str]:
    """Environment that points a subprocess at the database this test is using (the test database).

    Call it inside a test that has database access (``transactional_db``), so pytest-django has
    already switched the connection to the test database.
    """
    from django.db import connections

    return {"DATABASE_URL": database_url(connections[alias].settings_dict)}


# --- Celery ----------------------------------------------------------------------------------


class CeleryWorker:
    """A real ``celery -A itb_tracker worker`` subprocess on a given broker and queue.

    It runs the production settings (``itb_tracker.settings``, ``DEBUG=false``) with the broker,
    result backend and queue given here; ``extra_env`` adds or overrides variables (for example
    ``worker_database_env()``). Its output goes to ``log_dir`` (default: a new temporary directory; read it with :meth:`log`).

    ``start()`` returns once the worker logs that it is ready (or raises with its log);
    ``stop()`` asks for a warm shutdown and kills the process group after ``stop_timeout``;
    ``kill()`` SIGKILLs the whole process group at once (a worker lost mid-task).
    """

    def __init__(
        self,
        broker_url: str,
        queue: str | None = None,
        *,
        result_backend: str | None = None,
        extra_env: Mapping[str, str] | None = None,
        log_dir: Path | str | None = None,
        pool: str = "prefork",
        concurrency: int = 1,
        ready_timeout: float = 60.0,
        stop_timeout: float = 20.0,
    ):
        self.broker_url = broker_url
        self.queue = queue or unique_queue()
        self.result_backend = result_backend
        self.extra_env = dict(extra_env or {})
        self.pool = pool
        self.concurrency = concurrency
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.hostname = f"{self.queue}@localhost"
        log_dir = Path(log_dir) if log_dir is not None else Path(tempfile.mkdtemp(prefix="itb-worker-"))
        log_dir.mkdir(parents=True, exist_ok=True)
        self.var_dir = log_dir / f"{self.queue}-var"
        self.log_path = log_dir / f"{self.queue}.log"
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "celery", "-A", "itb_tracker", "worker",
            "--loglevel", "INFO",
            "--queues", self.queue,
            "--hostname", self.hostname,
            "--pool", self.pool,
            "--concurrency", str(self.concurrency),
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        for name in ("CELERY_RESULT_BACKEND", "TEST_CELERY_BROKER_URL"):
            env.pop(name, None)
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "itb_tracker.settings",
                "SECRET_KEY": random_secret_key(),
                "DEBUG": "false",
                "CELERY_BROKER_URL": self.broker_url,
                "CELERY_QUEUE": self.queue,
                "CELERY_TASK_ALWAYS_EAGER": "false",
                # Anything the worker writes under var/ (a default SQLite file, say) stays private.
                "ITB_VAR_DIR": str(self.var_dir),
                "PYTHONUNBUFFERED": "1",
            }
        )
        if self.result_backend:
            env["CELERY_RESULT_BACKEND"] = self.result_backend
        env.update(self.extra_env)
        return env

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self) -> CeleryWorker:
        if self.running:
            return self
        self.var_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                cwd=ROOT,
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_ready()
        return self

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if " ready." in self.log():
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"celery worker exited with {self.process.returncode}:\n{self.log()[-4000:]}")
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"celery worker not ready within {self.ready_timeout} s:\n{self.log()[-4000:]}")

    def stop(self) -> None:
        """Warm shutdown (SIGTERM to the main process), then SIGKILL to the group after ``stop_timeout``.

        Then the queue's keys are removed from a Redis broker, so test runs leave nothing behind.
        """
        _terminate(self.process, self.stop_timeout)
        forget_queue(self.broker_url, self.queue)

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes at once."""
        _terminate(self.process, 0)

    def __enter__(self) -> CeleryWorker:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def forget_queue(broker_url: str, queue: str) -> None:
    """Best effort: delete a test queue's keys (messages, bindings) from a Redis broker."""
    if not broker_url.startswith(("redis://", "rediss://")):
        return
    client = redis.Redis.from_url(broker_url, socket_connect_timeout=2, socket_timeout=5)
    try:
        keys = list(client.scan_iter(match=f"*{queue}*", count=1000))
        if keys:
            client.delete(*keys)
    except (redis.RedisError, OSError):
        pass
    finally:
        client.close()


@contextlib.contextmanager
def celery_client(broker_url: str, *, queue: str, result_backend: str | None = None) -> Iterator[Celery]:
    """A Celery app for sending tasks (``app.send_task(name, …)``) to ``queue`` on ``broker_url``.

    JSON only, like the project's app. It is not the current app (the project's app is left alone)
    and its connections are closed on exit.
    """
    app = Celery("itb-test-client", set_as_current=False)
    app.conf.update(
        broker_url=broker_url,
        result_backend=result_backend,
        task_default_queue=queue,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_ignore_result=result_backend is None,
        broker_connection_retry_on_startup=False,
        broker_connection_timeout=5,
        broker_connection_max_retries=3,
        broker_transport_options={"socket_connect_timeout": 5, "socket_timeout": 10},
        redis_socket_connect_timeout=5,
    )
    try:
        yield app
    finally:
        app.close()


# --- processes -------------------------------------------------------------------------------


def _terminate(process: subprocess.Popen | None, timeout: float) -> None:
    """Stop ``process`` (started with ``start_new_session=True``) and every process of its group.

    SIGTERM to the process first (a graceful stop) unless ``timeout`` is 0, then SIGKILL to the
    whole group, so no pool child outlives the test.
    """
    if process is None:
        return
    if timeout > 0 and process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


# --- waiting, and the project's own Celery app ----------------------------------------------


def wait_until(predicate, *, timeout: float = 60.0, interval: float = 0.2, message="condition"):
    """Poll ``predicate()`` until it returns something truthy (returned), at most ``timeout`` seconds.

    On timeout an ``AssertionError`` names ``message`` (a string, or a callable evaluated then, so it
    can show the state that was reached, a worker's log say). Never a fixed sleep: a fast machine
    goes on at once, a slow one gets the whole deadline.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            detail = message() if callable(message) else message
            raise AssertionError(f"timed out after {timeout} s waiting for: {detail}")
        time.sleep(interval)


@contextlib.contextmanager
def project_celery_app_on(broker_url: str, queue: str) -> Iterator[Celery]:
    """Point the project's Celery app (``itb_tracker.celery.app``) at ``broker_url`` and ``queue``.

    Production code publishes through that app (``deliver_notification.apply_async`` in the scan's
    enqueue step, for one): under test settings it talks to ``memory://``. Inside this block it
    publishes to a real broker, on the queue a test's worker consumes; connections fail fast when
    the broker is down (as in production settings). On exit the settings are restored, and the
    cached connection pools and queue declarations are dropped both ways, so nothing is left
    pointing at a server the test has stopped.
    """
    from itb_tracker.celery import app

    changes = {
        "broker_url": broker_url,
        "task_default_queue": queue,
        "broker_transport_options": {"socket_connect_timeout": 2, "socket_timeout": 5, "visibility_timeout": 3600},
        "broker_connection_timeout": 2,
    }
    saved = {key: app.conf[key] for key in changes}
    _drop_celery_connections(app)
    app.conf.update(changes)
    try:
        yield app
    finally:
        _drop_celery_connections(app)
        app.conf.update(saved)


def _drop_celery_connections(app: Celery) -> None:
    import kombu.pools

    kombu.pools.reset()  # every pooled connection and producer, closed and forgotten
    app._pool = None
    app.__dict__.pop("amqp", None)  # queues, router and producer pool are rebuilt from the new settings
