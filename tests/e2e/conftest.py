"""Browser tests: pytest-playwright driving Debian's Chromium against pytest-django's live server.

Chromium missing here: the tests skip with a reason; on CI (CI=true) they fail instead.
"""

import os
from pathlib import Path

import pytest

from ..conftest import service_unavailable

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
DOCS_SCREENSHOTS = ROOT / "docs" / "screenshots"


@pytest.fixture(scope="session", autouse=True)
def _serialized_database(django_db_setup):
    """The test database's serialized contents (catalogues from data migrations), taken from the
    connection that created it, before Playwright starts its event loop."""
    from django.db import connections

    return {alias: getattr(connections[alias], "_test_serialized_contents", None) for alias in connections}


@pytest.fixture(scope="session", autouse=True)
def _serialized_database_under_playwright(_serialized_database, playwright):
    """Give the connections seen under Playwright the same serialized contents.

    Playwright's sync API runs an event loop in the test thread, and from then on Django's
    connection handler (an asgiref Local) hands out new connection objects, which lack the
    serialized contents when the database was created earlier in the session (by other tests).
    Without them ``serialized_rollback`` restores nothing after a browser test's flush, and the
    next test finds no pump models or drug products.
    """
    from django.db import connections

    for alias, contents in _serialized_database.items():
        if contents is not None and not hasattr(connections[alias], "_test_serialized_contents"):
            connections[alias]._test_serialized_contents = contents


@pytest.fixture(scope="session")
def browser_type_launch_args():
    if not os.path.exists(CHROMIUM):
        service_unavailable(f"Debian chromium is not installed ({CHROMIUM}): apt-get install -y chromium")
    return {
        "executable_path": CHROMIUM,
        "args": [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
        ],
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1280, "height": 900}, "locale": "en-US"}


@pytest.fixture
def console_errors(page):
    """Console errors of the page (a content-security-policy violation shows up here)."""
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def screenshot(page, name: str, docs_name: str | None = None) -> Path:
    """Save a full-page screenshot under test-artifacts/screenshots/ (and docs/screenshots/ when
    ITB_SAVE_DOCS_SCREENSHOTS=1, for the README)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if docs_name and os.environ.get("ITB_SAVE_DOCS_SCREENSHOTS") == "1":
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS_SCREENSHOTS / f"{docs_name}.png"), full_page=False)
    return path


def log_in(page, live_server, username, password):
    """Sign in through the login page; a user who must use two-factor sign-in (admins) gets an
    enrolled authenticator beforehand and types its current code at the second step."""
    from django.contrib.auth import get_user_model

    from accounts.services import two_factor_required

    from ..factories import current_code, enrol_authenticator

    user = get_user_model().objects.get(username=username)
    device = enrol_authenticator(user) if two_factor_required(user) else None
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    if device is not None:
        page.wait_for_url(f"{live_server.url}/login/code/")
        page.get_by_label("Code").fill(current_code(device))
        page.get_by_role("button", name="Verify and log in").click()
    page.wait_for_url(f"{live_server.url}/")
