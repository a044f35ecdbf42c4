"""Clinic administration pages: staff, settings, escalation policies, webhooks, failing addresses.

DESIGN.md "Who may do what": clinic admins manage their own clinic; superusers every clinic;
other roles are refused (403) and another clinic does not exist for them (404).
"""

import socket
from datetime import date, datetime, timedelta
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.urls import reverse

from alerts import engine
from alerts.models import Alert, EscalationPolicy, FailingAddress, Severity, Webhook
from clinics.models import Clinic, Membership, Role
from patients import services

from .factories import PASSWORD, PatientFactory, PumpFactory, first_fill_order, member

PHX = ZoneInfo("America/Phoenix")
FILLED = datetime(2026, 1, 5, 9, tzinfo=PHX)
LATER = datetime(2026, 1, 20, 10, tzinfo=PHX)
OVERDUE = datetime(2026, 4, 30, 9, tzinfo=PHX)


def fill(pump, actor, when=FILLED, *, aspirated="0", volume="40", concentration="2000", dose="600", **extra):
    return services.record_refill(
        pump=pump,
        actor=actor,
        performed_at=when,
        aspirated_ml=D(aspirated),
        volume_added_ml=D(volume),
        concentration_mcg_per_ml=D(concentration),
        daily_dose_mcg=D(dose),
        now=when,
        **first_fill_order(pump, actor, extra),
    )


@pytest.fixture
def other_admin(other_clinic):
    return member(other_clinic, Role.CLINIC_ADMIN, username="otheradmin")


@pytest.fixture
def nurse_membership(clinic, nurse):
    return Membership.objects.get(user=nurse, clinic=clinic)


@pytest.fixture
def public_dns(monkeypatch):
    """Webhook hosts resolve to a public address (no network in tests)."""

    def resolve(host, port, *args, **kwargs):
        address = host if host[0].isdigit() else "93.184.215.14"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)


def admin_pages(clinic, membership=None, policy=None, webhook=None):
    """(method, url) of every administration page of ``clinic``."""
    pages = [
        ("get", reverse("clinic-staff", args=[clinic.pk])),
        ("get", reverse("clinic-staff-add", args=[clinic.pk])),
        ("post", reverse("clinic-staff-add", args=[clinic.pk])),
        ("get", reverse("clinic-settings", args=[clinic.pk])),
        ("post", reverse("clinic-settings", args=[clinic.pk])),
        ("get", reverse("clinic-policies", args=[clinic.pk])),
        ("post", reverse("clinic-policies-defaults", args=[clinic.pk])),
        ("get", reverse("clinic-notifications", args=[clinic.pk])),
        ("post", reverse("clinic-notifications", args=[clinic.pk])),
    ]
    if membership is not None:
        pages += [
            ("get", reverse("clinic-staff-edit", args=[clinic.pk, membership.pk])),
            ("post", reverse("clinic-staff-edit", args=[clinic.pk, membership.pk])),
            ("post", reverse("clinic-staff-active", args=[clinic.pk, membership.pk])),
        ]
    if policy is not None:
        pages += [
            ("get", reverse("clinic-policy-edit", args=[clinic.pk, policy.pk])),
            ("post", reverse("clinic-policy-edit", args=[clinic.pk, policy.pk])),
        ]
    if webhook is not None:
        pages.append(("post", reverse("clinic-webhook-active", args=[clinic.pk, webhook.pk])))
    return pages


# --- who may ------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Role.NURSE, Role.PHYSICIAN])
def test_care_staff_are_refused_every_administration_page(client, clinic, nurse_membership, role):
    user = member(clinic, role, username=f"care-{role}")
    policy = EscalationPolicy.objects.get(clinic=clinic, severity=Severity.URGENT)
    webhook = Webhook.objects.create(clinic=clinic, url="https://hooks.example.org/itb", secret="s")
    client.force_login(user)
    for method, url in admin_pages(clinic, nurse_membership, policy, webhook):
        assert getattr(client, method)(url).status_code == 403, url
    assert client.get(reverse("clinic-admin")).status_code == 403
    nurse_membership.refresh_from_db()
    assert nurse_membership.is_active


@pytest.mark.django_db
def test_another_clinics_admin_finds_nothing_there(client, clinic, other_admin, nurse_membership):
    policy = EscalationPolicy.objects.get(clinic=clinic, severity=Severity.URGENT)
    webhook = Webhook.objects.create(clinic=clinic, url="https://hooks.example.org/itb", secret="s")
    client.force_login(other_admin)
    for method, url in admin_pages(clinic, nurse_membership, policy, webhook):
        assert getattr(client, method)(url).status_code == 404, url
    nurse_membership.refresh_from_db()
    assert nurse_membership.is_active


@pytest.mark.django_db
def test_a_membership_of_another_clinic_is_not_found_under_ones_own(client, clinic, clinic_admin, other_clinic):
    stranger = Membership.objects.get(user=member(other_clinic, Role.NURSE, username="stranger"))
    client.force_login(clinic_admin)
    url = reverse("clinic-staff-active", args=[clinic.pk, stranger.pk])
    assert client.post(url, {"active": "0"}).status_code == 404
    stranger.refresh_from_db()
    assert stranger.is_active


@pytest.mark.django_db
def test_index_lists_only_the_clinics_the_user_administers(client, clinic, clinic_admin, other_clinic):
    client.force_login(clinic_admin)
    response = client.get(reverse("clinic-admin"))
    assert response.status_code == 200
    assert [c.pk for c in response.context["clinics"]] == [clinic.pk]
    assert other_clinic.name.encode() not in response.content


@pytest.mark.django_db
def test_superuser_administers_every_clinic(client, superuser, clinic, other_clinic):
    client.force_login(superuser)
    names = {c.name for c in client.get(reverse("clinic-admin")).context["clinics"]}
    assert {clinic.name, other_clinic.name} <= names
    assert client.get(reverse("clinic-settings", args=[other_clinic.pk])).status_code == 200


@pytest.mark.django_db
def test_admin_pages_open_for_the_clinics_admin(client, clinic, clinic_admin, nurse_membership):
    policy = EscalationPolicy.objects.get(clinic=clinic, severity=Severity.URGENT)
    client.force_login(clinic_admin)
    for method, url in admin_pages(clinic, nurse_membership, policy):
        if method == "get":
            assert client.get(url).status_code == 200, url


# --- settings ----------------------------------------------------------------------------------


def settings_form(clinic, **changes):
    from clinic_admin.forms import SETTING_FIELDS

    data = {name: getattr(clinic, name) for name in SETTING_FIELDS}
    data.update(changes)
    return {k: ("" if v is None else v) for k, v in data.items()}


@pytest.mark.django_db
def test_settings_page_shows_every_setting_with_help_and_unit(client, clinic, clinic_admin):
    client.force_login(clinic_admin)
    content = client.get(reverse("clinic-settings", args=[clinic.pk])).content.decode()
    assert "Refill safety margin (days)" in content
    assert "Days before the conservative alarm date (or drug expiry) that a refill is due." in content
    assert "Maximum daily dose, hard limit (mcg/day)" in content
    assert "Residual tolerance, small reservoirs (mL)" in content


@pytest.mark.django_db
def test_a_wider_refill_margin_moves_a_filled_pumps_due_date_earlier(client, clinic, clinic_admin, nurse):
    pump = PumpFactory(patient=PatientFactory(clinic=clinic), assigned_nurse=nurse)
    fill(pump, nurse)
    due_before = pump.projection.refill_due_on
    client.force_login(clinic_admin)
    with time_machine.travel(LATER, tick=False):
        response = client.post(
            reverse("clinic-settings", args=[clinic.pk]), settings_form(clinic, refill_margin_days=10)
        )
    assert response.status_code == 302
    pump.projection.refresh_from_db()
    assert pump.projection.unmoved_refill_due_on == due_before - timedelta(days=3)  # Sunday 2026-04-26
    assert pump.projection.refill_due_on == date(2026, 4, 24)  # moved to the Friday before (closed days)
    clinic.refresh_from_db()
    assert clinic.refill_margin_days == 10
    change = clinic.history.order_by("-history_id").first()
    assert (change.history_user, change.refill_margin_days) == (clinic_admin, 10)


@pytest.mark.django_db
def test_a_refused_setting_is_shown_beside_its_field_and_nothing_is_saved(client, clinic, other_clinic, clinic_admin):
    client.force_login(clinic_admin)
    response = client.post(
        reverse("clinic-settings", args=[clinic.pk]),
        settings_form(clinic, name=other_clinic.name, refill_margin_days=9),
    )
    assert response.status_code == 200
    assert "name" in response.context["form"].errors
    clinic.refresh_from_db()
    assert (clinic.name, clinic.refill_margin_days) == ("Saguaro Test Clinic", 7)


@pytest.mark.django_db
def test_an_out_of_range_setting_is_refused_by_the_form(client, clinic, clinic_admin):
    client.force_login(clinic_admin)
    response = client.post(reverse("clinic-settings", args=[clinic.pk]), settings_form(clinic, drift_alert_ratio="0.9"))
    assert "drift_alert_ratio" in response.context["form"].errors
    clinic.refresh_from_db()
    assert clinic.drift_alert_ratio == D("1.10")


# --- staff ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_admin_adds_a_nurse_who_can_log_in_and_history_names_the_admin(client, clinic, clinic_admin):
    client.force_login(clinic_admin)
    response = client.post(
        reverse("clinic-staff-add", args=[clinic.pk]),
        {
            "username": "newnurse",
            "first_name": "Nora",
            "last_name": "Newhire",
            "email": "nora@clinic.example",
            "role": Role.NURSE,
            "password": PASSWORD,
            "password_again": PASSWORD,
        },
    )
    assert response.status_code == 302
    membership = Membership.objects.get(user__username="newnurse", clinic=clinic)
    assert membership.role == Role.NURSE and membership.is_active
    assert membership.user.get_full_name() == "Nora Newhire"
    assert membership.history.earliest().history_user == clinic_admin
    client.logout()
    login = client.post(reverse("login"), {"username": "newnurse", "password": PASSWORD})
    assert login.status_code == 302 and login.url == reverse("home")


@pytest.mark.django_db
def test_adding_a_taken_username_or_weak_password_is_refused_beside_the_field(client, clinic, clinic_admin, nurse):
    client.force_login(clinic_admin)
    response = client.post(
        reverse("clinic-staff-add", args=[clinic.pk]),
        {"username": "NURSE", "role": Role.NURSE, "password": "short", "password_again": "short"},
    )
    errors = response.context["form"].errors
    assert "username" in errors and "password" in errors
    assert Membership.objects.filter(clinic=clinic).count() == 2


@pytest.mark.django_db
def test_deactivating_a_nurse_keeps_them_with_history_naming_the_admin(client, clinic, clinic_admin, nurse_membership):
    pump = PumpFactory(patient=PatientFactory(clinic=clinic), assigned_nurse=nurse_membership.user)
    client.force_login(clinic_admin)
    response = client.post(
        reverse("clinic-staff-active", args=[clinic.pk, nurse_membership.pk]), {"active": "0"}, follow=True
    )
    nurse_membership.refresh_from_db()
    assert nurse_membership.is_active is False
    latest = nurse_membership.history.first()
    assert (latest.history_user, latest.history_type, latest.is_active) == (clinic_admin, "~", False)
    assert get_user_model().objects.filter(pk=nurse_membership.user_id).exists()
    assert "1 pump is still assigned" in response.content.decode()
    assert pump.assigned_nurse_id == nurse_membership.user_id

    client.post(reverse("clinic-staff-active", args=[clinic.pk, nurse_membership.pk]), {"active": "1"})
    nurse_membership.refresh_from_db()
    assert nurse_membership.is_active
    assert nurse_membership.history.first().history_user == clinic_admin


@pytest.mark.django_db
def test_the_last_admin_cannot_deactivate_or_demote_themselves(client, clinic, clinic_admin):
    own = Membership.objects.get(user=clinic_admin, clinic=clinic)
    client.force_login(clinic_admin)
    response = client.post(reverse("clinic-staff-active", args=[clinic.pk, own.pk]), {"active": "0"}, follow=True)
    assert "no active administrator left" in response.content.decode()
    response = client.post(
        reverse("clinic-staff-edit", args=[clinic.pk, own.pk]),
        {"role": Role.NURSE, "phone": "", "notification_email": ""},
    )
    assert "role" in response.context["form"].errors
    own.refresh_from_db()
    assert (own.is_active, own.role) == (True, Role.CLINIC_ADMIN)


@pytest.mark.django_db
def test_admin_changes_a_members_notification_email(client, clinic, clinic_admin, nurse_membership):
    client.force_login(clinic_admin)
    client.post(
        reverse("clinic-staff-edit", args=[clinic.pk, nurse_membership.pk]),
        {"role": Role.NURSE, "phone": "+1 555 0199", "notification_email": "pager@clinic.example"},
    )
    nurse_membership.refresh_from_db()
    assert (nurse_membership.email, nurse_membership.phone) == ("pager@clinic.example", "+1 555 0199")


# --- escalation policies ------------------------------------------------------------------------


def policy_post(policy, levels, **fields):
    data = {
        "repeat_count": fields.get("repeat_count", "" if policy.repeat_count is None else policy.repeat_count),
        "realert_minutes": fields.get("realert_minutes", policy.realert_minutes),
        "levels-TOTAL_FORMS": len(levels),
        "levels-INITIAL_FORMS": sum(1 for level in levels if level.get("id")),
        "levels-MIN_NUM_FORMS": 0,
        "levels-MAX_NUM_FORMS": 1000,
    }
    for i, level in enumerate(levels):
        for key, value in level.items():
            data[f"levels-{i}-{key}"] = value
    return data


@pytest.mark.django_db
def test_editing_a_policy_changes_new_alerts_only(client, clinic, clinic_admin, nurse, physician):
    pump = PumpFactory(patient=PatientFactory(clinic=clinic), assigned_nurse=nurse)
    fill(pump, nurse)
    engine.run_scan(OVERDUE)
    running = Alert.objects.get(pump=pump)
    policy = EscalationPolicy.objects.get(clinic=clinic, severity=running.severity)
    snapshot_before = running.policy_snapshot
    first, second = policy.levels.order_by("position")
    client.force_login(clinic_admin)
    page = client.get(reverse("clinic-policy-edit", args=[clinic.pk, policy.pk])).content.decode()
    assert "Changes apply to new alerts only." in page
    response = client.post(
        reverse("clinic-policy-edit", args=[clinic.pk, policy.pk]),
        policy_post(
            policy,
            [
                {"id": first.pk, "step": 1, "roles": ["nurse"], "channels": ["in_app"], "wait_minutes": 15},
                {
                    "id": second.pk,
                    "step": 2,
                    "DELETE": "on",
                    "roles": ["physician"],
                    "channels": ["email"],
                    "wait_minutes": 1,
                },
                {"step": 2, "users": [physician.pk], "channels": ["email", "in_app"], "wait_minutes": 45},
            ],
            repeat_count="",
        ),
    )
    assert response.status_code == 302, response.context and response.context["levels"].errors
    policy.refresh_from_db()
    assert policy.repeat_count is None
    snapshot = policy.snapshot()
    assert [(lvl["roles"], lvl["user_ids"], lvl["wait_minutes"]) for lvl in snapshot["levels"]] == [
        (["nurse"], [], 15),
        ([], [physician.pk], 45),
    ]
    assert policy.history.first().history_user == clinic_admin
    running.refresh_from_db()
    assert running.policy_snapshot == snapshot_before


@pytest.mark.django_db
def test_a_level_that_notifies_nobody_is_refused(client, clinic, clinic_admin):
    policy = EscalationPolicy.objects.get(clinic=clinic, severity=Severity.REMINDER)
    level = policy.levels.get()
    client.force_login(clinic_admin)
    response = client.post(
        reverse("clinic-policy-edit", args=[clinic.pk, policy.pk]),
        policy_post(policy, [{"id": level.pk, "step": 1, "channels": ["email"], "wait_minutes": 60}]),
    )
    assert response.status_code == 200
    assert "Choose who this level notifies" in response.content.decode()
    level.refresh_from_db()
    assert level.assigned_nurse


# --- webhooks and failing addresses ----------------------------------------------------------------


@pytest.mark.django_db
def test_webhook_signing_secret_is_shown_once(client, clinic, clinic_admin, public_dns):
    client.force_login(clinic_admin)
    url = reverse("clinic-notifications", args=[clinic.pk])
    response = client.post(url, {"url": "https://hooks.example.org/itb"})
    hook = Webhook.objects.get(clinic=clinic)
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    assert hook.secret in response.content.decode()
    assert hook.history.first().history_user == clinic_admin
    assert hook.secret not in client.get(url).content.decode()


@pytest.mark.django_db
def test_a_private_webhook_address_is_refused(client, clinic, clinic_admin, settings):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    client.force_login(clinic_admin)
    response = client.post(reverse("clinic-notifications", args=[clinic.pk]), {"url": "https://10.1.2.3/hook"})
    assert "refused destination: 10.1.2.3 resolves to an address that is not public" in str(
        response.context["form"].errors["url"]
    )
    response = client.post(reverse("clinic-notifications", args=[clinic.pk]), {"url": "http://hooks.example.org/"})
    assert "https" in str(response.context["form"].errors["url"])
    assert not Webhook.objects.exists()


@pytest.mark.django_db
def test_admin_disables_and_enables_a_webhook(client, clinic, clinic_admin, public_dns):
    hook = Webhook.objects.create(clinic=clinic, url="https://hooks.example.org/itb", secret="s")
    client.force_login(clinic_admin)
    url = reverse("clinic-webhook-active", args=[clinic.pk, hook.pk])
    client.post(url, {"active": "0"})
    hook.refresh_from_db()
    assert not hook.is_active and hook.history.first().history_user == clinic_admin
    response = client.post(reverse("clinic-notifications", args=[clinic.pk]), {"url": hook.url})
    assert "already has this webhook" in str(response.context["form"].errors["url"])
    client.post(url, {"active": "1"})
    hook.refresh_from_db()
    assert hook.is_active and hook.secret == "s"


@pytest.mark.django_db
def test_failing_addresses_not_cleared_are_listed_with_their_owner(client, clinic, clinic_admin, nurse_membership):
    nurse_membership.notification_email = "gone@clinic.example"
    nurse_membership.save()
    now = datetime(2026, 2, 1, 8, tzinfo=PHX)
    FailingAddress.objects.create(
        clinic=clinic,
        channel="email",
        address="gone@clinic.example",
        first_failed_at=now,
        last_failed_at=now,
        last_error="550 mailbox unavailable",
    )
    FailingAddress.objects.create(
        clinic=clinic,
        channel="email",
        address="fixed@clinic.example",
        first_failed_at=now,
        last_failed_at=now,
        cleared_at=now + timedelta(hours=1),
    )
    client.force_login(clinic_admin)
    response = client.get(reverse("clinic-notifications", args=[clinic.pk]))
    rows = response.context["failing"]
    assert [row.address for row in rows] == ["gone@clinic.example"]
    assert rows[0].owners == [nurse_membership]
    assert "550 mailbox unavailable" in response.content.decode()
    index = client.get(reverse("clinic-admin")).content.decode()
    assert "1 notification address failing" in index


@pytest.mark.django_db
def test_missing_default_policies_can_be_restored(client, clinic_admin, clinic):
    EscalationPolicy.objects.filter(clinic=clinic, severity=Severity.REVIEW).get().levels.all().delete()
    EscalationPolicy.objects.filter(clinic=clinic, severity=Severity.REVIEW).delete()
    client.force_login(clinic_admin)
    assert b"Some severities have no policy" in client.get(reverse("clinic-policies", args=[clinic.pk])).content
    client.post(reverse("clinic-policies-defaults", args=[clinic.pk]))
    assert EscalationPolicy.objects.filter(clinic=clinic, severity=Severity.REVIEW).exists()
    assert Clinic.objects.count() >= 1
