"""Two-factor sign-in: enrolment, the code after the password, recovery codes, throttling, the
clinic admin's reset, and who must use it (MFA_REQUIRED_FOR_ADMINS, the clinic setting)."""

import re
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.urls import reverse
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import services
from accounts.models import RecoveryCode, UserSession
from clinics.models import AccessLog, Role

from .factories import PASSWORD, current_code, enrol_authenticator, member


def sign_in(client, username, password=PASSWORD):
    return client.post(reverse("login"), {"username": username, "password": password})


def enter_code(client, code):
    return client.post(reverse("login-code"), {"code": code})


def enrol_through_the_page(client, user) -> list[str]:
    page = client.get(reverse("account-enrol"))
    assert page.status_code == 200
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    response = client.post(reverse("account-enrol"), {"code": current_code(device)})
    assert response.status_code == 302 and response["Location"] == reverse("account-recovery-codes")
    return client.get(reverse("account-recovery-codes")).context["codes"]


@pytest.mark.django_db
def test_clinic_admin_signing_in_with_a_password_must_enrol_before_any_page(client, clinic_admin):
    assert sign_in(client, "clinicadmin").status_code == 302
    for name in ("home", "clinic-admin", "alert-inbox", "account-security"):
        response = client.get(reverse(name))
        assert response.status_code == 302 and response["Location"] == reverse("account-enrol"), name
    page = client.get(reverse("account-enrol"))
    assert page.status_code == 200
    text = page.content.decode()
    assert "data:image/svg+xml" in text and "Set up two-factor sign-in" in text
    assert client.get(reverse("api-clinics")).status_code == 403  # nor through the API with this session

    wrong = client.post(reverse("account-enrol"), {"code": "000000"})
    assert wrong.status_code == 400 and "did not match" in wrong.content.decode()
    codes = enrol_through_the_page(client, clinic_admin)

    assert len(codes) == 10 and len(set(codes)) == 10
    assert all(re.fullmatch(r"[a-z2-7]{4}(-[a-z2-7]{4}){3}", code) for code in codes)
    stored = set(RecoveryCode.objects.values_list("code_hash", flat=True))
    assert len(stored) == 10 and not stored & set(codes)  # only hashes are kept
    assert client.get(reverse("account-recovery-codes")).context["codes"] is None  # shown once
    assert client.get(reverse("clinic-admin")).status_code == 200
    assert AccessLog.objects.filter(user=clinic_admin, action=AccessLog.Action.ENROLLED).count() == 1


@pytest.mark.django_db
def test_nurse_signs_in_with_a_password_alone_unless_her_clinic_requires_two_factor(client, clinic, nurse):
    sign_in(client, "nurse")
    assert client.get(reverse("home")).status_code == 200
    clinic.two_factor_required = True
    clinic.save()
    response = client.get(reverse("home"))
    assert response.status_code == 302 and response["Location"] == reverse("account-enrol")


@pytest.mark.django_db
def test_with_mfa_required_for_admins_off_an_admin_signs_in_with_a_password(client, clinic_admin, superuser, settings):
    settings.MFA_REQUIRED_FOR_ADMINS = False
    sign_in(client, "clinicadmin")
    assert client.get(reverse("clinic-admin")).status_code == 200
    assert not services.two_factor_required(superuser)


@pytest.mark.django_db
def test_enrolled_user_gives_the_code_after_the_password(client, nurse):
    device = enrol_authenticator(nurse)
    response = sign_in(client, "nurse")
    assert response.status_code == 302 and response["Location"] == reverse("login-code")
    assert "_auth_user_id" not in client.session  # the password alone signed nobody in
    assert client.get(reverse("home")).status_code == 302

    response = enter_code(client, current_code(device))
    assert response.status_code == 302 and response["Location"] == reverse("home")
    assert client.get(reverse("home")).status_code == 200
    entry = AccessLog.objects.get(action=AccessLog.Action.SIGN_IN)
    assert entry.user == nurse and entry.detail.startswith("password + authenticator code")
    assert UserSession.objects.get(user=nurse).second_factor == "authenticator code"


@pytest.mark.django_db
def test_a_code_is_accepted_once(client, nurse):
    device = enrol_authenticator(nurse)
    code = current_code(device)
    sign_in(client, "nurse")
    enter_code(client, code)
    other = type(client)()
    sign_in(other, "nurse")
    assert enter_code(other, code).status_code == 400  # replayed within its 30 s window


@pytest.mark.django_db
def test_recovery_code_signs_in_once_and_says_how_many_are_left(client, nurse):
    enrol_authenticator(nurse)
    codes = services.issue_recovery_codes(nurse)
    sign_in(client, "nurse")
    response = enter_code(client, codes[3].upper().replace("-", " "))
    assert response.status_code == 302
    page = client.get(reverse("home"))
    assert "9 left" in page.content.decode()
    assert AccessLog.objects.filter(action=AccessLog.Action.SIGN_IN, detail__startswith="password + recovery code")

    again = type(client)()
    sign_in(again, "nurse")
    assert enter_code(again, codes[3]).status_code == 400
    assert "_auth_user_id" not in again.session


@pytest.mark.django_db
def test_wrong_codes_are_throttled_like_wrong_passwords(client, nurse, settings):
    settings.AXES_FAILURE_LIMIT = 3
    device = enrol_authenticator(nurse)
    sign_in(client, "nurse")
    assert enter_code(client, "111111").status_code == 400
    assert enter_code(client, "222222").status_code == 400
    assert enter_code(client, "333333").status_code == 429  # the third failure locks out
    locked = enter_code(client, current_code(device))
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session
    assert AccessLog.objects.filter(user=nurse, action=AccessLog.Action.CODE_FAILED).count() == 3
    # The lockout covers the password step too, for this username and address.
    assert sign_in(type(client)(), "nurse").status_code == 429


@pytest.mark.django_db
def test_code_step_expires_after_five_minutes(client, nurse):
    device = enrol_authenticator(nurse)
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        sign_in(client, "nurse")
    with time_machine.travel(start + timedelta(minutes=6), tick=False):
        response = enter_code(client, current_code(device))
    assert response.status_code == 302 and response["Location"] == reverse("login")
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_admin_site_login_goes_through_the_two_step_sign_in(client):
    response = client.get("/admin/login/?next=/admin/")
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


@pytest.mark.django_db
def test_clinic_admin_resets_a_members_second_factor_member_is_emailed_and_signed_out(
    client, clinic, clinic_admin, nurse, django_capture_on_commit_callbacks
):
    enrol_authenticator(nurse)
    services.issue_recovery_codes(nurse)
    nurse_browser = type(client)()
    nurse_browser.force_login(nurse)
    membership = nurse.memberships.get()
    client.force_login(clinic_admin)
    page = client.get(reverse("clinic-staff-edit", args=[clinic.pk, membership.pk]))
    assert "Reset two-factor sign-in" in page.content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("clinic-staff-two-factor-reset", args=[clinic.pk, membership.pk]), follow=True)
    assert "two-factor sign-in reset" in response.content.decode()
    assert not services.has_two_factor(nurse) and services.recovery_device(nurse) is None
    entry = AccessLog.objects.get(action=AccessLog.Action.TWO_FACTOR_RESET)
    assert (entry.user, entry.clinic, entry.object_id) == (clinic_admin, clinic, nurse.pk)
    [email] = mail.outbox
    assert email.to == [nurse.email] and "two-factor sign-in was reset" in email.subject
    assert clinic.name in email.body
    assert nurse_browser.get(reverse("home")).status_code == 302  # signed out


@pytest.mark.django_db
def test_clinic_admin_cannot_reset_a_superusers_or_their_own_second_factor(client, clinic, clinic_admin):
    root = member(clinic, Role.NURSE, username="root2", is_superuser=True)
    enrol_authenticator(root)
    client.force_login(clinic_admin)
    for user in (root, clinic_admin):
        membership = user.memberships.get()
        client.post(reverse("clinic-staff-two-factor-reset", args=[clinic.pk, membership.pk]))
        assert services.has_two_factor(user)
    assert not AccessLog.objects.filter(action=AccessLog.Action.TWO_FACTOR_RESET).exists()


# --- the API token endpoint --------------------------------------------------------------------


def token(body):
    from rest_framework.test import APIClient

    return APIClient().post(reverse("api-token"), body, format="json")


@pytest.fixture
def fresh_throttle():
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.mark.django_db
def test_api_token_asks_for_the_code_from_a_user_with_an_authenticator(nurse, fresh_throttle):
    device = enrol_authenticator(nurse)
    missing = token({"username": "nurse", "password": PASSWORD})
    assert missing.status_code == 400 and "code" in missing.json()
    wrong = token({"username": "nurse", "password": PASSWORD, "code": "123456"})
    assert wrong.status_code == 400 and "code" in wrong.json()
    right = token({"username": "nurse", "password": PASSWORD, "code": current_code(device)})
    assert right.status_code == 200 and set(right.json()) == {"token", "expiry"}
    assert AccessLog.objects.filter(action=AccessLog.Action.CODE_FAILED, detail__startswith="API token").count() == 1
    assert AccessLog.objects.filter(action=AccessLog.Action.SIGN_IN, detail__startswith="API token, password +")
    assert not UserSession.objects.exists()  # a token is not a browser session


@pytest.mark.django_db
def test_api_token_wrong_codes_lock_the_account_out(nurse, fresh_throttle, settings):
    settings.AXES_FAILURE_LIMIT = 2
    device = enrol_authenticator(nurse)
    token({"username": "nurse", "password": PASSWORD, "code": "123456"})
    assert token({"username": "nurse", "password": PASSWORD, "code": "654321"}).status_code == 429
    assert token({"username": "nurse", "password": PASSWORD, "code": current_code(device)}).status_code == 429


@pytest.mark.django_db
def test_api_token_refused_to_an_admin_who_has_not_enrolled(clinic_admin, fresh_throttle):
    response = token({"username": "clinicadmin", "password": PASSWORD})
    assert response.status_code == 400 and "set it up on the web" in response.json()["code"][0]


@pytest.mark.django_db
def test_banner_polling_while_enrolment_is_owed_swaps_nothing_in(client, clinic_admin):
    sign_in(client, "clinicadmin")
    response = client.get(reverse("alert-status"), HTTP_HX_REQUEST="true")
    assert response.status_code == 204
