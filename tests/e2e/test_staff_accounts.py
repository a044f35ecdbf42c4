"""Staff accounts in a real browser: a clinic admin enrols an authenticator and signs in with a
code and with a recovery code; a new nurse changes the password her admin typed; a physician
resets a forgotten password from the email the real SMTP sink received."""

import re
import time
from base64 import b32decode
from contextlib import contextmanager

import pytest
from django_otp.oath import TOTP
from playwright.sync_api import expect

from accounts import services
from clinics import services as clinic_services
from clinics.models import AccessLog, Role

from ..factories import PASSWORD, ClinicFactory, member
from ..smtp_sink import SmtpSink
from .conftest import screenshot

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.xdist_group("e2e"),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

NEW_PASSWORD = "saguaro-refill-evening-42"


def app_code(secret: str, steps_ahead: int = 0) -> str:
    """What an authenticator app shows for the key typed from the enrolment page."""
    totp = TOTP(b32decode(secret.replace(" ", "") + "=" * (-len(secret.replace(" ", "")) % 8)))
    totp.time = time.time() + 30 * steps_ahead
    return f"{totp.token():06d}"


@contextmanager
def tasks_run_at_once():
    """The reset email is a worker's task: run it in the live server's thread as the request commits."""
    from itb_tracker.celery import app

    saved = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = app.conf.task_eager_propagates = True
    try:
        yield
    finally:
        app.conf.task_always_eager, app.conf.task_eager_propagates = saved


def password_step(page, live_server, username, password):
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def log_out(page):
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()


def test_admin_enrols_then_signs_in_with_a_code_and_with_a_recovery_code(live_server, page, console_errors):
    clinic = ClinicFactory(name="Ironwood Pump Clinic (test)")
    admin = member(clinic, Role.CLINIC_ADMIN, username="ada", first_name="Ada", last_name="Admin")

    password_step(page, live_server, "ada", PASSWORD)
    page.wait_for_url(f"{live_server.url}/account/two-factor/")
    expect(page.get_by_role("heading", name="Set up two-factor sign-in")).to_be_visible()
    qr = page.get_by_role("img", name="QR code to scan with your authenticator app")
    expect(qr).to_be_visible()
    assert qr.evaluate("img => img.naturalWidth") > 0  # the SVG QR code renders under the CSP
    secret = page.locator("#secret-key").inner_text()
    screenshot(page, "accounts-01-enrol", "two-factor-enrol")

    page.get_by_label("Code from the app").fill("000000")
    page.get_by_role("button", name="Confirm and turn on").click()
    expect(page.get_by_text("That code did not match")).to_be_visible()
    page.get_by_label("Code from the app").fill(app_code(secret))
    page.get_by_role("button", name="Confirm and turn on").click()
    expect(page.get_by_role("heading", name="Your recovery codes")).to_be_visible()
    codes = page.get_by_role("list", name="Recovery codes").get_by_role("listitem").all_inner_texts()
    assert len(codes) == 10
    screenshot(page, "accounts-02-recovery-codes")
    page.get_by_role("link", name="I have saved them — continue").click()
    page.wait_for_url(f"{live_server.url}/")
    page.reload()
    log_out(page)

    # Next sign-in: the password, then the app's code.
    password_step(page, live_server, "ada", PASSWORD)
    page.wait_for_url(f"{live_server.url}/login/code/")
    expect(page.get_by_role("heading", name="Enter your code")).to_be_visible()
    screenshot(page, "accounts-03-code", "sign-in-code")
    page.get_by_label("Code").fill(app_code(secret, steps_ahead=1))  # the enrolment used this window's
    page.get_by_role("button", name="Verify and log in").click()
    page.wait_for_url(f"{live_server.url}/")
    page.goto(f"{live_server.url}/clinic/")
    expect(page.get_by_role("heading", name="Clinic administration")).to_be_visible()
    log_out(page)

    # Phone left at home: a recovery code, once.
    password_step(page, live_server, "ada", PASSWORD)
    page.get_by_label("Code").fill(codes[0])
    page.get_by_role("button", name="Verify and log in").click()
    page.wait_for_url(f"{live_server.url}/")
    expect(page.get_by_role("alert").filter(has_text="9 left")).to_be_visible()
    screenshot(page, "accounts-04-recovery-code-used")

    page.get_by_role("link", name="Ada Admin").click()
    expect(page.get_by_role("heading", name="Security", exact=True)).to_be_visible()
    expect(page.get_by_text("9 recovery codes left")).to_be_visible()
    expect(page.get_by_role("cell", name=re.compile("with recovery code"))).to_be_visible()
    screenshot(page, "accounts-05-security", "security-page")
    log_out(page)

    password_step(page, live_server, "ada", PASSWORD)
    page.get_by_label("Code").fill(codes[0])
    page.get_by_role("button", name="Verify and log in").click()
    expect(page.get_by_text("That code is not right")).to_be_visible()

    actions = list(AccessLog.objects.filter(user=admin).order_by("id").values_list("action", flat=True))
    assert actions.count("sign_in") == 3 and "enrolled" in actions and "code_failed" in actions
    # The wrong codes' pages answer 400 (the browser logs that); nothing else may fail.
    assert [e for e in console_errors if "400 (Bad Request)" not in e] == [], console_errors


def test_new_nurse_changes_the_password_her_admin_typed(live_server, page, console_errors):
    clinic = ClinicFactory(name="Ironwood Pump Clinic (test)")
    admin = member(clinic, Role.CLINIC_ADMIN, username="ada")
    membership = clinic_services.create_staff(
        actor=admin, clinic=clinic, role=Role.NURSE, username="nina", password="typed-by-ada-2026"
    )
    services.mark_password_temporary(membership.user, actor=admin)

    password_step(page, live_server, "nina", "typed-by-ada-2026")
    page.wait_for_url(f"{live_server.url}/account/password/first/")
    page.goto(f"{live_server.url}/alerts/")
    page.wait_for_url(f"{live_server.url}/account/password/first/")  # nothing else first
    expect(page.get_by_role("heading", name="Choose your own password")).to_be_visible()
    screenshot(page, "accounts-06-first-password")
    page.locator("#id_new_password1").fill(NEW_PASSWORD)
    page.locator("#id_new_password2").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Save my password").click()
    page.wait_for_url(f"{live_server.url}/")
    expect(page.get_by_role("status").filter(has_text="Password changed")).to_be_visible()
    log_out(page)
    password_step(page, live_server, "nina", NEW_PASSWORD)
    page.wait_for_url(f"{live_server.url}/")
    assert console_errors == [], console_errors


def test_physician_resets_a_forgotten_password_from_the_email(live_server, page, console_errors, settings):
    clinic = ClinicFactory(name="Ironwood Pump Clinic (test)")
    physician = member(clinic, Role.PHYSICIAN, username="pat", email="pat@ironwood.example")
    with SmtpSink() as sink, tasks_run_at_once():
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = sink.host, sink.port
        settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        settings.SITE_URL = live_server.url

        page.goto(f"{live_server.url}/login/")
        page.get_by_role("link", name="Forgot your password?").click()
        page.get_by_label("Email").fill("PAT@ironwood.example")
        screenshot(page, "accounts-07-reset-ask")
        page.get_by_role("button", name="Send the link").click()
        expect(page.get_by_role("heading", name="Check your email")).to_be_visible()

        deadline = time.monotonic() + 10
        while not sink.messages_to("pat@ironwood.example") and time.monotonic() < deadline:
            time.sleep(0.1)
        [message] = sink.messages_to("pat@ironwood.example")
    assert message.subject == "ITB Tracker: reset your password"
    link = re.search(r"(http://\S+/reset/\S+/)", message.body).group(1)
    assert link.startswith(live_server.url)

    page.goto(link)
    expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
    screenshot(page, "accounts-08-reset-choose")
    page.locator("#id_new_password1").fill(NEW_PASSWORD)
    page.locator("#id_new_password2").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Set my password").click()
    expect(page.get_by_role("heading", name="Password changed")).to_be_visible()

    page.goto(link)  # the link works once
    expect(page.get_by_role("heading", name="This link no longer works")).to_be_visible()
    screenshot(page, "accounts-09-reset-link-used")

    password_step(page, live_server, "pat", NEW_PASSWORD)
    page.wait_for_url(f"{live_server.url}/")
    physician.refresh_from_db()
    assert physician.check_password(NEW_PASSWORD)
    assert console_errors == [], console_errors
