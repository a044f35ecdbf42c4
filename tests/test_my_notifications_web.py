"""The "My notifications" page and what clinic admins see of phone methods (issue 17)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse

from alerts import contacts
from alerts.models import ContactMethod, FailingAddress, NotificationRule, Severity
from clinics.models import Membership, Role

from .factories import member, put_on_rota
from .receivers import JsonReceiver

PHX = ZoneInfo("America/Phoenix")
SECRET_PATH = "page-Secr3tPathToken"


@pytest.fixture
def receiver(settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    with JsonReceiver() as r:
        yield r


@pytest.fixture
def on_call_nurse(clinic):
    nurse = member(clinic, Role.NURSE, username="nurse-oncall")
    put_on_rota(clinic, nurse)
    return nurse


@pytest.mark.django_db
def test_nurse_adds_and_verifies_a_method_and_never_sees_its_secret_again(client, on_call_nurse, receiver):
    client.force_login(on_call_nurse)
    page = client.get(reverse("my-notifications"))
    assert page.status_code == 200 and b"No verified phone method" in page.content
    url = receiver.url(SECRET_PATH)
    added = client.post(reverse("contact-method-add"), {"label": "Pager", "url": url}, follow=True)
    assert b"A 6-digit code was sent" in added.content and b"Not verified" in added.content
    assert SECRET_PATH.encode() not in added.content
    method = ContactMethod.objects.get(user=on_call_nurse)
    wrong = client.post(reverse("contact-method-verify", args=[method.pk]), {f"m{method.pk}-code": "000000"})
    if receiver.last_code() != "000000":
        assert wrong.status_code == 400 and b"not the code" in wrong.content
    verified = client.post(
        reverse("contact-method-verify", args=[method.pk]), {f"m{method.pk}-code": receiver.last_code()}, follow=True
    )
    assert b"is verified" in verified.content and b"Verified" in verified.content
    assert b"No verified phone method" not in verified.content
    assert SECRET_PATH.encode() not in verified.content


@pytest.mark.django_db
def test_refused_address_is_not_echoed_back(client, nurse, settings):
    client.force_login(nurse)
    response = client.post(
        reverse("contact-method-add"), {"label": "Mine", "url": "gotify://host/Tok3nNotToEcho"}, follow=True
    )
    assert response.status_code == 400 and b"not an allowed kind" in response.content
    assert b"Tok3nNotToEcho" not in response.content and not ContactMethod.objects.exists()


@pytest.mark.django_db
def test_another_members_method_answers_404(client, clinic, on_call_nurse, receiver):
    method, _ = contacts.add_contact_method(user=on_call_nurse, label="Pager", url=receiver.url())
    other = member(clinic, Role.NURSE, username="nurse-other")
    client.force_login(other)
    for name in ("contact-method-verify", "contact-method-code", "contact-method-remove"):
        assert (
            client.post(reverse(name, args=[method.pk]), {f"m{method.pk}-code": receiver.last_code()}).status_code
            == 404
        )
    method.refresh_from_db()
    assert method.verified_at is None and method.removed_at is None


@pytest.mark.django_db
def test_nurse_sets_and_resets_a_rule(client, on_call_nurse, receiver):
    method, _ = contacts.add_contact_method(user=on_call_nurse, label="Pager", url=receiver.url())
    client.force_login(on_call_nurse)
    url = reverse("notification-rule", args=[Severity.CRITICAL])
    saved = client.post(url, {"method_0": str(method.pk), "after_0": "0", "method_1": "email", "after_1": "10"})
    assert saved.status_code == 302
    assert NotificationRule.objects.get(user=on_call_nurse, severity=Severity.CRITICAL).steps == [
        {"method": method.pk, "after_minutes": 0},
        {"method": "email", "after_minutes": 10},
    ]
    bad = client.post(url, {"method_0": "email", "after_0": "-5"})
    assert bad.status_code == 400 and b"greater than or equal to 0" in bad.content
    client.post(url, {"reset": "1"})
    assert not NotificationRule.objects.filter(user=on_call_nurse).exists()


@pytest.mark.django_db
def test_admins_see_on_call_members_without_a_phone_and_failing_phone_methods(
    client, clinic, clinic_admin, on_call_nurse, receiver
):
    client.force_login(clinic_admin)
    page = client.get(reverse("clinic-notifications", args=[clinic.pk]))
    assert b"Named for urgent alerts, without a phone" in page.content
    section = page.content.split(b"data-without-phone")[1].split(b"</ul>")[0]
    assert on_call_nurse.username.encode() in section or on_call_nurse.get_full_name().encode() in section

    method, _ = contacts.add_contact_method(user=on_call_nurse, label="Pager", url=receiver.url(SECRET_PATH))
    contacts.verify_contact_method(method=method, user=on_call_nurse, code=receiver.last_code())
    now = datetime(2026, 2, 1, 2, tzinfo=PHX)
    contacts.record_delivery_failure(method.pk, "the provider refused the message (HTTP 404)", permanent=True, now=now)
    FailingAddress.objects.create(
        clinic=clinic, channel="phone", address=method.address, first_failed_at=now, last_failed_at=now, last_error="x"
    )
    page = client.get(reverse("clinic-notifications", args=[clinic.pk]))
    assert b"data-without-phone" not in page.content  # verified: no longer listed
    assert b"Pager: json://127.0.0.1" in page.content and SECRET_PATH.encode() not in page.content

    client.force_login(on_call_nurse)
    own = client.get(reverse("my-notifications"))
    assert b"data-my-failing-methods" in own.content and b"HTTP 404" in own.content
    assert now + timedelta(0) == ContactMethod.objects.get(pk=method.pk).failing_since


@pytest.mark.django_db
def test_admins_list_whoever_takes_a_turn_on_a_rota_an_urgent_level_names(clinic, clinic_admin, on_call_nurse):
    """On call is computed at each step: everyone in the turn order of a named rotation, and whoever
    covers it by a swap now or later, is named for urgent alerts; a rota no level names is not."""
    from alerts.models import EscalationLevel
    from alerts.personal import urgent_responders_without_phone
    from clinics import services as clinic_services
    from clinics.models import Rotation

    off_rota = member(clinic, Role.NURSE, username="nurse-off-rota")
    cover = member(clinic, Role.PHYSICIAN, username="dr-cover")
    physician_on_own_rota = member(clinic, Role.PHYSICIAN, username="dr-own-rota")
    put_on_rota(clinic, physician_on_own_rota)
    nurse_rota = Rotation.objects.get(clinic=clinic, role=Role.NURSE)
    urgent_levels = EscalationLevel.objects.filter(policy__clinic=clinic, policy__severity__gte=Severity.URGENT)
    urgent_levels.update(roles=[], assigned_nurse=False, on_call_rotation_ids=[nurse_rota.pk])
    for level in urgent_levels:
        level.users.clear()
    now = datetime(2026, 2, 1, 2, tzinfo=PHX)
    clinic_services.add_rota_override(
        actor=clinic_admin,
        rotation=nurse_rota,
        membership=Membership.objects.get(user=cover, clinic=clinic),
        starts_at=now + timedelta(days=7),
        ends_at=now + timedelta(days=8),
        reason="Sick cover",
        now=now,
    )

    listed = {m.user.username: m.rota_names for m in urgent_responders_without_phone(clinic, now=now)}

    assert listed == {on_call_nurse.username: [nurse_rota.name], cover.username: [nurse_rota.name]}
    assert off_rota.username not in listed and physician_on_own_rota.username not in listed
