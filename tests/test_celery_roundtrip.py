"""Celery: a real round trip through Redis and a worker process; the app's safety settings."""

import os
import uuid

import environ
import pytest
from django.core import checks
from django.db import connection
from django.test import override_settings

from itb_tracker.celery import app as project_app

from .services import (
    CeleryWorker,
    RedisServer,
    celery_client,
    redis_reachable,
    require_redis,
    unique_queue,
    worker_database_env,
)


@pytest.fixture
def redis_worker(tmp_path):
    """A real ``celery -A itb_tracker worker`` on the shared test Redis, on a queue of its own."""
    broker = require_redis()
    worker = CeleryWorker(broker, unique_queue(), result_backend=broker, log_dir=tmp_path)
    try:
        worker.start()
        yield worker
    finally:
        worker.stop()


@pytest.mark.redis
@pytest.mark.services
@pytest.mark.xdist_group("services")
def test_ping_round_trip_through_redis_and_a_worker_process(redis_worker):
    token = uuid.uuid4().hex
    with celery_client(
        redis_worker.broker_url, queue=redis_worker.queue, result_backend=redis_worker.result_backend
    ) as client:
        result = client.send_task("itb_tracker.ping", args=[token])
        try:
            answer = result.get(timeout=60)
        except Exception as exc:
            raise AssertionError(f"no answer from the worker ({exc!r}); its log:\n{redis_worker.log()[-4000:]}")
        finally:
            result.forget()
    assert answer["token"] == token
    assert answer["pid"] != os.getpid()
    assert redis_worker.running


def test_celery_app_settings_survive_a_lost_worker():
    conf = project_app.conf
    assert project_app.main == "itb_tracker"
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert list(conf.accept_content) == ["json"]
    assert conf.task_serializer == "json"
    assert conf.result_serializer == "json"
    assert "itb_tracker.ping" in project_app.tasks


def _e001():
    return [message for message in checks.run_checks() if message.id == "itb.E001"]


@pytest.mark.parametrize("visibility_timeout", [600, 900])
def test_check_refuses_a_visibility_timeout_not_above_the_longest_countdown(visibility_timeout):
    with override_settings(
        CELERY_BROKER_URL="redis://redis:6379/0",
        CELERY_BROKER_TRANSPORT_OPTIONS={"visibility_timeout": visibility_timeout},
        CELERY_MAX_COUNTDOWN_SECONDS=900,
    ):
        errors = _e001()
    assert len(errors) == 1
    assert errors[0].level == checks.ERROR


def test_check_accepts_a_visibility_timeout_above_the_longest_countdown():
    with override_settings(
        CELERY_BROKER_URL="rediss://redis:6379/0",
        CELERY_BROKER_TRANSPORT_OPTIONS={"visibility_timeout": 901},
        CELERY_MAX_COUNTDOWN_SECONDS=900,
    ):
        assert _e001() == []


def test_check_ignores_brokers_without_a_visibility_timeout():
    with override_settings(
        CELERY_BROKER_URL="filesystem://",
        CELERY_BROKER_TRANSPORT_OPTIONS={"visibility_timeout": 1},
        CELERY_MAX_COUNTDOWN_SECONDS=900,
    ):
        assert _e001() == []


# --- the service helpers themselves (tests/services.py) ----------------------------------------


@pytest.mark.redis
@pytest.mark.services
@pytest.mark.xdist_group("services")
def test_private_redis_server_goes_down_and_comes_back_on_its_port():
    with RedisServer() as server:
        url = server.url(db=3)
        assert redis_reachable(url)
        server.kill()
        assert not server.running
        assert not redis_reachable(url, timeout=0.5)
        server.start()
        assert redis_reachable(url)
    assert not redis_reachable(url, timeout=0.5)


@pytest.mark.django_db(transaction=True)
def test_worker_database_env_names_the_test_database():
    settings_dict = connection.settings_dict
    if settings_dict["ENGINE"].endswith("sqlite3") and not os.environ.get("TEST_SQLITE_NAME"):
        with pytest.raises(RuntimeError, match="in-memory"):
            worker_database_env()
        return
    parsed = environ.Env.db_url_config(worker_database_env()["DATABASE_URL"])
    assert parsed["ENGINE"] == settings_dict["ENGINE"]
    assert str(parsed["NAME"]) == str(settings_dict["NAME"])
    if settings_dict["ENGINE"].endswith("postgresql"):
        assert settings_dict["NAME"].startswith("test_")
        assert (parsed["USER"], str(parsed["PORT"])) == (settings_dict["USER"], str(settings_dict["PORT"]))
