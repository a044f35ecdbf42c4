"""Passwords: the first sign-in changes a password a clinic admin typed; reset by email (same
answer for any address, a link that works once and expires within an hour, throttled, ending
the user's other sessions and API tokens)."""

import re
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from accounts.models import TemporaryPassword, UserSession
from clinics.models import AccessLog, Role

from .factories import PASSWORD, member

NEW_PASSWORD = "a-new-pump-refill-password"


def sign_in(client, username, password=PASSWORD):
    return client.post(reverse("login"), {"username": username, "password": password})


# --- first sign-in ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_password_typed_on_the_staff_page_must_be_changed_at_first_sign_in(client, clinic, clinic_admin):
    client.force_login(clinic_admin)
    client.post(
        reverse("clinic-staff-add", args=[clinic.pk]),
        {
            "username": "newnurse",
            "email": "newnurse@clinic.example",
            "role": Role.NURSE,
            "password": "typed-by-the-admin-1",
            "password_again": "typed-by-the-admin-1",
        },
    )
    assert TemporaryPassword.objects.filter(user__username="newnurse", set_by=clinic_admin).exists()

    browser = Client()
    sign_in(browser, "newnurse", "typed-by-the-admin-1")
    for name in ("home", "alert-inbox", "account-security"):
        response = browser.get(reverse(name))
        assert response.status_code == 302 and response["Location"] == reverse("account-password-first"), name
    assert browser.get(reverse("api-clinics")).status_code == 403
    page = browser.get(reverse("account-password-first"))
    assert "Choose your own password" in page.content.decode()

    same = browser.post(
        reverse("account-password-first"),
        {"new_password1": "typed-by-the-admin-1", "new_password2": "typed-by-the-admin-1"},
    )
    assert same.status_code == 400 and "not the one you were given" in same.content.decode()
    done = browser.post(
        reverse("account-password-first"), {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    )
    assert done.status_code == 302
    assert browser.get(reverse("home")).status_code == 200  # still signed in, free to go
    assert not TemporaryPassword.objects.exists()
    assert AccessLog.objects.filter(user__username="newnurse", action=AccessLog.Action.PASSWORD_CHANGED).exists()
    assert sign_in(Client(), "newnurse", NEW_PASSWORD).status_code == 302


@pytest.mark.django_db
def test_staff_created_through_the_api_keep_the_password_their_provisioner_chose(clinic, clinic_admin):
    api = APIClient()
    api.force_authenticate(clinic_admin)
    body = {
        "username": "provisioned",
        "password": "chosen-by-script-77",
        "email": "p@clinic.example",
        "clinic": clinic.pk,
    }
    assert api.post(reverse("api-staff"), {**body, "role": "nurse"}, format="json").status_code == 201
    assert not TemporaryPassword.objects.exists()
    browser = Client()
    sign_in(browser, "provisioned", "chosen-by-script-77")
    assert browser.get(reverse("home")).status_code == 200
    token = APIClient().post(
        reverse("api-token"), {"username": "provisioned", "password": "chosen-by-script-77"}, format="json"
    )
    assert token.status_code == 200


@pytest.mark.django_db
def test_temporary_password_gets_no_api_token(clinic, nurse):
    TemporaryPassword.objects.create(user=nurse)
    response = APIClient().post(reverse("api-token"), {"username": "nurse", "password": PASSWORD}, format="json")
    assert response.status_code == 400 and "password" in response.json()


# --- reset by email ------------------------------------------------------------------------------


@pytest.fixture
def ask_reset(django_capture_on_commit_callbacks):
    """Ask for a reset link, the worker's task run at once (in-process) once the request commits."""
    from itb_tracker.celery import app

    saved = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = app.conf.task_eager_propagates = True

    def ask(client, email):
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(reverse("password_reset"), {"email": email})

    yield ask
    app.conf.task_always_eager, app.conf.task_eager_propagates = saved


def reset_link(message) -> str:
    return re.search(r"https?://[^/\s]+(/reset/\S+/)", message.body).group(1)


@pytest.mark.django_db
def test_reset_answers_the_same_for_any_address_and_mails_only_the_account(client, nurse, settings, ask_reset):
    settings.SITE_URL = "https://itb.clinic.example"
    known = ask_reset(client, nurse.email.upper())
    unknown = ask_reset(client, "nobody@clinic.example")
    assert known.status_code == unknown.status_code == 302
    assert known["Location"] == unknown["Location"] == reverse("password_reset_done")
    [message] = mail.outbox
    assert message.to == [nurse.email]
    assert "https://itb.clinic.example/reset/" in message.body
    assert AccessLog.objects.filter(user=nurse, action=AccessLog.Action.PASSWORD_RESET).count() == 1


@pytest.mark.django_db
def test_reset_link_works_once(client, nurse, ask_reset):
    ask_reset(client, nurse.email)
    link = reset_link(mail.outbox[0])
    form = client.get(link, follow=True)
    assert form.context["validlink"]
    done = client.post(form.redirect_chain[-1][0], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert done.status_code == 302 and done["Location"] == reverse("password_reset_complete")
    nurse.refresh_from_db()
    assert nurse.check_password(NEW_PASSWORD)
    again = Client().get(link, follow=True)
    assert not again.context["validlink"]
    assert "no longer works" in again.content.decode()


@pytest.mark.django_db
def test_reset_link_expires_within_an_hour(client, nurse, ask_reset):
    sent = timezone.now()
    with time_machine.travel(sent, tick=False):
        ask_reset(client, nurse.email)
    link = reset_link(mail.outbox[0])
    with time_machine.travel(sent + timedelta(minutes=59), tick=False):
        assert Client().get(link, follow=True).context["validlink"]
    with time_machine.travel(sent + timedelta(minutes=61), tick=False):
        assert not Client().get(link, follow=True).context["validlink"]


@pytest.mark.django_db
def test_reset_requests_are_throttled_per_address_without_locking_the_sign_in(client, nurse, settings, ask_reset):
    settings.AXES_FAILURE_LIMIT = 3
    for _ in range(3):
        assert ask_reset(client, nurse.email).status_code == 302
    refused = ask_reset(client, nurse.email)
    assert refused.status_code == 429 and "Too many attempts" in refused.content.decode()
    assert len(mail.outbox) == 3
    assert ask_reset(client, "someone-else@clinic.example").status_code == 302  # per address
    assert sign_in(Client(), "nurse").status_code == 302  # her sign-in is not locked


@pytest.mark.django_db
def test_reset_ends_the_users_other_sessions_and_api_tokens(client, nurse, ask_reset):
    elsewhere = Client()
    sign_in(elsewhere, "nurse")
    assert elsewhere.get(reverse("home")).status_code == 200
    AuthToken.objects.create(user=nurse)
    ask_reset(client, nurse.email)
    form = client.get(reset_link(mail.outbox[0]), follow=True)
    client.post(form.redirect_chain[-1][0], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})

    assert elsewhere.get(reverse("home")).status_code == 302
    assert not AuthToken.objects.filter(user=nurse).exists()
    assert not UserSession.objects.filter(user=nurse, ended_at__isnull=True).exists()
    assert AccessLog.objects.filter(user=nurse, action=AccessLog.Action.SESSION_ENDED).count() == 1
    assert AccessLog.objects.filter(user=nurse, action=AccessLog.Action.TOKEN_ENDED).count() == 1
    assert AccessLog.objects.filter(user=nurse, action=AccessLog.Action.PASSWORD_RESET, detail__startswith="reset by")


@pytest.mark.django_db
def test_reset_does_not_skip_the_second_factor(client, clinic, ask_reset):
    from .factories import current_code, enrol_authenticator

    admin = member(clinic, Role.CLINIC_ADMIN, username="ada")
    device = enrol_authenticator(admin)
    ask_reset(client, admin.email)
    form = client.get(reset_link(mail.outbox[0]), follow=True)
    client.post(form.redirect_chain[-1][0], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    browser = Client()
    assert sign_in(browser, "ada", NEW_PASSWORD)["Location"] == reverse("login-code")
    assert browser.post(reverse("login-code"), {"code": current_code(device)}).status_code == 302


@pytest.mark.django_db
def test_reset_email_is_left_to_a_worker_so_known_and_unknown_addresses_answer_alike(
    client, nurse, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as known:
        client.post(reverse("password_reset"), {"email": nurse.email})
    with django_capture_on_commit_callbacks() as unknown:
        client.post(reverse("password_reset"), {"email": "nobody@clinic.example"})
    assert mail.outbox == []  # nothing sent within the request
    assert len(known) == 1 and unknown == []
