import os

import pytest
from django.test import Client

from clinics.models import Role

from .factories import ClinicFactory, enrol_authenticator, member

ON_CI = os.environ.get("CI", "").lower() == "true"

# ITB_TEST_CLOCK=2027-03-14T09:30:00Z runs the whole session on a clock starting at that instant
# (time_machine, ticking), to check that no test depends on the day or hour it runs. Tests with
# their own ``time_machine.travel`` nest inside it. Subprocesses (a Celery worker, gunicorn,
# ``make run``) keep the real clock: tests marked ``services`` are skipped under it.
TEST_CLOCK = os.environ.get("ITB_TEST_CLOCK", "").strip()
_test_clock_travel = None


def _test_clock_instant(value: str):
    import datetime

    try:
        instant = datetime.datetime.fromisoformat(value)
    except ValueError:
        instant = None
    if instant is None or instant.tzinfo is None:
        raise pytest.UsageError(
            f"ITB_TEST_CLOCK={value!r}: expected an ISO 8601 instant with its offset, e.g. 2027-03-14T09:30:00Z"
        )
    return instant


def pytest_configure(config):
    """Start the session clock before anything else (settings, the test database, any test)."""
    global _test_clock_travel
    if TEST_CLOCK and _test_clock_travel is None:
        import time_machine

        _test_clock_travel = time_machine.travel(_test_clock_instant(TEST_CLOCK), tick=True)
        _test_clock_travel.start()


def pytest_unconfigure(config):
    global _test_clock_travel
    if _test_clock_travel is not None:
        _test_clock_travel.stop()
        _test_clock_travel = None


def pytest_report_header(config):
    if TEST_CLOCK:
        return f"ITB_TEST_CLOCK: the session clock started at {TEST_CLOCK} (services tests skipped)"
    return None


def pytest_collection_modifyitems(config, items):
    """PostgreSQL-only tests belong to CI's PostgreSQL pass: skipped on SQLite. Under
    ITB_TEST_CLOCK, tests that start real processes are skipped: those run on the real clock."""
    from django.conf import settings

    on_postgres = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
    for item in items:
        if "postgres" in item.keywords and not on_postgres:
            item.add_marker(pytest.mark.skip(reason="needs PostgreSQL (DATABASE_URL=postgres://…)"))
        if TEST_CLOCK and "services" in item.keywords:
            item.add_marker(
                pytest.mark.skip(
                    reason=f"ITB_TEST_CLOCK={TEST_CLOCK}: its subprocesses (Celery worker, server) run on the real clock"
                )
            )


def service_unavailable(reason: str):
    """Skip when a service is missing here; on CI (CI=true) a missing service fails the test."""
    if ON_CI:
        pytest.fail(f"required on CI: {reason}")
    pytest.skip(reason)


class SignedInClient(Client):
    """``force_login`` as a finished sign-in: for a user who must use two-factor sign-in (clinic
    admins, superusers) the session is verified with an enrolled authenticator, as after the
    code step. Tests of the sign-in itself post to the login pages or use ``Client()``."""

    def force_login(self, user, backend=None):
        super().force_login(user, backend)
        from django_otp import DEVICE_ID_SESSION_KEY

        from accounts.services import two_factor_required

        if two_factor_required(user):
            session = self.session
            session[DEVICE_ID_SESSION_KEY] = enrol_authenticator(user).persistent_id
            session.save()


@pytest.fixture
def client():
    return SignedInClient()


@pytest.fixture
def clinic(db):
    return ClinicFactory(name="Saguaro Test Clinic", timezone="America/Phoenix")


@pytest.fixture
def other_clinic(db):
    return ClinicFactory(name="Other Test Clinic", timezone="America/Chicago")


@pytest.fixture
def nurse(clinic):
    return member(clinic, Role.NURSE, username="nurse")


@pytest.fixture
def physician(clinic):
    return member(clinic, Role.PHYSICIAN, username="physician")


@pytest.fixture
def clinic_admin(clinic):
    return member(clinic, Role.CLINIC_ADMIN, username="clinicadmin")


@pytest.fixture
def superuser(db):
    from .factories import UserFactory

    return UserFactory(username="root", is_superuser=True, is_staff=True)


@pytest.fixture(scope="session", autouse=True)
def _serialized_restore_starts_from_the_serialized_content_types():
    """A transactional test without serialized rollback (a Celery worker's, a live server's) ends
    with a flush whose post_migrate re-creates content types and permissions under new ids; a
    serialized-rollback test after it on the same xdist worker then restored the old ids next to
    them and failed on (app_label, model) — depending only on the order tests met on a worker.
    Before restoring, drop those re-created rows: the restore brings back the originals."""
    from django.db.backends.base.creation import BaseDatabaseCreation

    original = BaseDatabaseCreation.deserialize_db_from_string

    def deserialize_db_from_string(self, data):
        from django.contrib.contenttypes.models import ContentType

        with self.connection.cursor() as cursor:
            for table in ("auth_group_permissions", "auth_user_user_permissions", "auth_permission"):
                cursor.execute(f"DELETE FROM {self.connection.ops.quote_name(table)}")  # noqa: S608 - fixed names
            cursor.execute(f"DELETE FROM {self.connection.ops.quote_name('django_content_type')}")  # noqa: S608
        ContentType.objects.clear_cache()
        return original(self, data)

    BaseDatabaseCreation.deserialize_db_from_string = deserialize_db_from_string
    yield
    BaseDatabaseCreation.deserialize_db_from_string = original
