"""The Security page: the user's sessions (device, last seen, where from) and API tokens, each
of which can be ended; deactivating a member ends all of theirs; the demo logins stay usable."""

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client, override_settings
from django.urls import reverse
from knox.models import AuthToken

from accounts.models import UserSession
from clinics.models import AccessLog

from .factories import PASSWORD, enrol_authenticator

FIREFOX_WINDOWS = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0"
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)


def browser(user_agent, address):
    return Client(HTTP_USER_AGENT=user_agent, REMOTE_ADDR=address)


def sign_in(client, username, password=PASSWORD):
    response = client.post(reverse("login"), {"username": username, "password": password})
    assert response.status_code == 302
    return client


@pytest.mark.django_db
def test_security_page_lists_sessions_and_tokens_and_ends_them(nurse):
    desk = sign_in(browser(FIREFOX_WINDOWS, "10.1.2.3"), "nurse")
    phone = sign_in(browser(SAFARI_IPHONE, "10.9.8.7"), "nurse")
    AuthToken.objects.create(user=nurse)
    token = AuthToken.objects.get(user=nurse)

    page = desk.get(reverse("account-security"))
    text = page.content.decode()
    assert "Firefox on Windows" in text and "Safari on iPhone" in text
    assert "10.1.2.3" in text and "10.9.8.7" in text
    assert f"{token.token_key}…" in text
    sessions = {row["device"]: row for row in page.context["sessions"]}
    assert sessions["Firefox on Windows"]["current"] and not sessions["Safari on iPhone"]["current"]

    phone_record = sessions["Safari on iPhone"]["record"]
    desk.post(reverse("account-session-end", args=[phone_record.pk]))
    assert phone.get(reverse("home")).status_code == 302  # signed out at its next request
    assert desk.get(reverse("home")).status_code == 200
    assert UserSession.objects.get(pk=phone_record.pk).ended_reason == "ended by the user"

    desk.post(reverse("account-token-end", args=[token.token_key]))
    assert not AuthToken.objects.filter(user=nurse).exists()
    ended = AccessLog.objects.filter(user=nurse, action__in=["session_ended", "token_ended"])
    assert sorted(ended.values_list("action", flat=True)) == ["session_ended", "token_ended"]


@pytest.mark.django_db
def test_a_user_cannot_end_someone_elses_session(nurse, physician):
    sign_in(browser(FIREFOX_WINDOWS, "10.1.2.3"), "nurse")
    theirs = UserSession.objects.get(user=nurse)
    other = sign_in(Client(), "physician")
    assert other.post(reverse("account-session-end", args=[theirs.pk])).status_code == 404
    assert UserSession.objects.get(pk=theirs.pk).ended_at is None


@pytest.mark.django_db
def test_signing_out_ends_the_session_record(client, nurse):
    sign_in(client, "nurse")
    client.post(reverse("logout"))
    assert UserSession.objects.get(user=nurse).ended_reason == "signed out"


@pytest.mark.django_db
def test_deactivating_a_member_ends_all_their_sessions_and_tokens(client, clinic, clinic_admin, nurse):
    nurse_desk = sign_in(Client(), "nurse")
    AuthToken.objects.create(user=nurse)
    client.force_login(clinic_admin)
    membership = nurse.memberships.get()
    client.post(reverse("clinic-staff-active", args=[clinic.pk, membership.pk]), {"active": "0"})

    assert nurse_desk.get(reverse("home")).status_code == 302
    assert not AuthToken.objects.filter(user=nurse).exists()
    assert UserSession.objects.get(user=nurse).ended_reason == "deactivated"


@pytest.mark.django_db
def test_clinic_admin_sees_and_changes_the_clinics_two_factor_setting(client, clinic, clinic_admin):
    client.force_login(clinic_admin)
    page = client.get(reverse("clinic-settings", args=[clinic.pk]))
    assert "Two-factor sign-in required for all staff" in page.content.decode()
    data = dict(page.context["form"].initial)
    data["two_factor_required"] = "on"
    client.post(reverse("clinic-settings", args=[clinic.pk]), data)
    clinic.refresh_from_db()
    assert clinic.two_factor_required


# --- the demo clinic (make run) -------------------------------------------------------------------


def demo_logins(output: str) -> dict[str, str]:
    logins = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[-2].startswith("demo-"):
            logins[parts[-2]] = parts[-1]
    return logins


@pytest.mark.django_db
@override_settings(DEBUG=True, MFA_REQUIRED_FOR_ADMINS=False)
def test_demo_logins_work_as_printed_with_two_factor_off(capsys):
    call_command("seed_demo", pumps=2)
    enrol_authenticator(get_user_model().objects.get(username="demo-admin"))
    call_command("seed_demo", pumps=2)  # make run again: an earlier enrolment is dropped
    output = capsys.readouterr().out
    assert "Two-factor sign-in is off for this fictional demo clinic (MFA_REQUIRED_FOR_ADMINS=false)" in output
    logins = demo_logins(output.split("Demo logins")[-1])
    assert set(logins) == {"demo-nurse", "demo-nurse2", "demo-physician", "demo-admin", "demo-superuser"}
    for username in ("demo-admin", "demo-superuser", "demo-nurse"):
        desk = Client()
        response = desk.post(reverse("login"), {"username": username, "password": logins[username]})
        assert response["Location"] == reverse("home"), username
        assert desk.get(reverse("home")).status_code == 200, username


@pytest.mark.django_db
@override_settings(DEBUG=True, MFA_REQUIRED_FOR_ADMINS=True)
def test_demo_says_when_admins_must_enrol(capsys):
    call_command("seed_demo", pumps=1)
    assert "required for demo-admin and demo-superuser" in capsys.readouterr().out


@pytest.mark.django_db
def test_clinic_access_log_shows_its_members_sign_ins(client, clinic, clinic_admin, nurse, other_clinic):
    from .factories import member

    outsider = member(other_clinic, username="outsider")
    sign_in(Client(), "nurse")
    sign_in(Client(), "outsider")
    client.force_login(clinic_admin)
    page = client.get(reverse("clinic-access-log", args=[clinic.pk]))
    users = {entry.user for entry in page.context["page"].object_list}
    assert nurse in users and outsider not in users
    assert "Signed in" in page.content.decode()
