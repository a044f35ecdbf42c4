"""Alerts that reach a phone: personal contact methods through apprise, verified, with personal
rules (issue 17). Apprise really sends, to receivers these tests start (tests/receivers.py), and
the tests read what arrived: nothing of apprise is mocked.
"""

from __future__ import annotations

import io
import logging
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection

from alerts import contacts, crypto, delivery, engine
from alerts import services as alert_services
from alerts.channels import phone
from alerts.models import (
    Alert,
    AlertEvent,
    ContactMethod,
    FailingAddress,
    Notification,
    Severity,
)
from alerts.personal import PersonalRules
from clinics.models import Role
from patients import services as patient_services
from patients.models import PumpEvent

from .factories import filled_pump, member, put_on_rota
from .receivers import JsonReceiver, NtfyReceiver

PHX = ZoneInfo("America/Phoenix")
ALARM_AT = datetime(2026, 2, 1, 2, 0, tzinfo=PHX)  # 02:00: an email wakes nobody


@pytest.fixture
def loopback_allowed(settings):
    """The receivers listen on 127.0.0.1, which the destination guard refuses unless the operator
    admits its network (as a hospital admits its paging gateway's)."""
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.SITE_URL = "https://itb.clinic.example"
    return settings


@pytest.fixture
def json_receiver():
    with JsonReceiver() as receiver:
        yield receiver


@pytest.fixture
def ntfy_receiver():
    with NtfyReceiver() as receiver:
        yield receiver


@pytest.fixture
def staff(clinic):
    people = {
        "nurse": member(clinic, Role.NURSE, username="nurse-a"),
        "oncall": member(clinic, Role.NURSE, username="nurse-oncall"),
        "physician": member(clinic, Role.PHYSICIAN, username="dr-b"),
        "admin": member(clinic, Role.CLINIC_ADMIN, username="admin-c"),
    }
    put_on_rota(clinic, people["oncall"])
    return people


def verified_method(user, receiver, label, **url_kwargs) -> ContactMethod:
    """Add a method the way a member does: the code arrives at the receiver and is typed back."""
    method, problem = contacts.add_contact_method(user=user, label=label, url=receiver.url(**url_kwargs))
    assert problem == ""
    return contacts.verify_contact_method(method=method, user=user, code=receiver.last_code())


def emergency(clinic, staff, when=ALARM_AT) -> Alert:
    pump = filled_pump(clinic, staff["nurse"])
    patient_services.record_pump_event(
        pump=pump, actor=staff["nurse"], kind=PumpEvent.Kind.CRITICAL_ALARM, occurred_at=when, now=when
    )
    return Alert.objects.get(pump=pump)


def deliver_due(now) -> dict[int, str]:
    """What a worker would do at ``now`` with every pending notification."""
    pending = Notification.objects.filter(status=Notification.Status.PENDING).order_by("pk")
    return {n.pk: delivery.deliver(n.pk, now) for n in pending}


def alert_messages(receiver) -> list[str]:
    return [m for m in receiver.messages if "verification code" not in m]


# --- verification -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_new_json_method_gets_a_code_and_is_verified_by_typing_it_back(staff, loopback_allowed, json_receiver):
    nurse = staff["oncall"]
    method, problem = contacts.add_contact_method(user=nurse, label="Paging gateway", url=json_receiver.url())
    assert problem == "" and method.verified_at is None and not method.is_usable
    assert len(json_receiver.received) == 1 and json_receiver.received[0]["path"] == "/page"
    message = json_receiver.messages[0]
    assert re.search(r"verification code: \d{6}\.", message) and len(message) <= 160

    method = contacts.verify_contact_method(method=method, user=nurse, code=json_receiver.last_code())
    assert method.is_usable and method.state == "verified"


@pytest.mark.django_db
def test_wrong_expired_and_guessed_codes_are_refused(staff, loopback_allowed, json_receiver):
    nurse = staff["oncall"]
    now = datetime(2026, 2, 1, 9, tzinfo=PHX)
    method, _ = contacts.add_contact_method(user=nurse, label="Gateway", url=json_receiver.url(), now=now)
    code = json_receiver.last_code()
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    with pytest.raises(ValidationError, match="not the code"):
        contacts.verify_contact_method(method=method, user=nurse, code=wrong, now=now)
    with pytest.raises(ValidationError, match="expired"):
        contacts.verify_contact_method(method=method, user=nurse, code=code, now=now + timedelta(minutes=16))
    # Someone else cannot verify (or even see) my method.
    with pytest.raises(ValidationError):
        contacts.verify_contact_method(method=method, user=staff["nurse"], code=code, now=now)
    for _ in range(4):
        with pytest.raises(ValidationError):
            contacts.verify_contact_method(method=method, user=nurse, code=wrong, now=now)
    # Five wrong tries: even the right code no longer works until a new one is sent.
    with pytest.raises(ValidationError, match="Too many"):
        contacts.verify_contact_method(method=method, user=nurse, code=code, now=now)
    method.refresh_from_db()
    assert method.verified_at is None
    with pytest.raises(ValidationError, match="moments ago"):
        contacts.send_verification_code(method=method, user=nurse, now=now + timedelta(seconds=10))
    assert contacts.send_verification_code(method=method, user=nurse, now=now + timedelta(minutes=1)) == ""
    fresh = json_receiver.last_code()
    method = contacts.verify_contact_method(method=method, user=nurse, code=fresh, now=now + timedelta(minutes=2))
    assert method.is_usable


@pytest.mark.django_db
def test_unverified_method_receives_no_alert(clinic, staff, loopback_allowed, json_receiver):
    contacts.add_contact_method(user=staff["oncall"], label="Gateway", url=json_receiver.url())
    emergency(clinic, staff)
    engine.advance_escalations(ALARM_AT)
    assert not Notification.objects.filter(channel="phone").exists()
    deliver_due(ALARM_AT)
    assert alert_messages(json_receiver) == []


# --- the allowlist and the destination guard ------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        "mailto://someone:password@example.org",
        "https://example.org/hook",
        "gotify://gotify.example.org/token",
        "file:///etc/passwd",
        "not a url",
    ],
)
def test_schemes_outside_the_allowlist_are_refused_and_nothing_is_stored(staff, url):
    with pytest.raises(ValidationError) as refused:
        contacts.add_contact_method(user=staff["nurse"], label="Mine", url=url)
    assert "url" in refused.value.message_dict
    assert not ContactMethod.objects.exists()


@pytest.mark.django_db
def test_operator_narrows_the_allowlist(staff, settings, loopback_allowed, ntfy_receiver):
    settings.NOTIFY_ALLOWED_SCHEMES = ["json", "jsons"]
    with pytest.raises(ValidationError, match="not an allowed kind"):
        contacts.add_contact_method(user=staff["nurse"], label="Push", url=ntfy_receiver.url())
    assert ntfy_receiver.received == []


@pytest.mark.django_db
def test_private_destination_is_refused_unless_the_operator_allows_it(staff, settings, json_receiver):
    settings.WEBHOOK_ALLOWED_NETWORKS = ["10.0.0.0/8"]  # another network is admitted, not loopback
    with pytest.raises(ValidationError, match="not public"):
        contacts.add_contact_method(user=staff["nurse"], label="Mine", url=json_receiver.url())
    for url in (
        "json://192.168.1.3/page",
        "ntfy://169.254.169.254/topic",
        "jsons://[::1]:8443/x",
        "json://100.64.0.1/",
    ):
        with pytest.raises(ValidationError, match="not public"):
            contacts.add_contact_method(user=staff["nurse"], label="Mine", url=url)
    assert json_receiver.received == [] and not ContactMethod.objects.exists()


@pytest.mark.django_db
def test_destination_checked_again_at_send_time(clinic, staff, settings, loopback_allowed, json_receiver):
    verified_method(staff["oncall"], json_receiver, "Gateway")
    emergency(clinic, staff)
    engine.advance_escalations(ALARM_AT)
    settings.WEBHOOK_ALLOWED_NETWORKS = []  # the operator tightens the guard after the method was added
    deliver_due(ALARM_AT)
    row = Notification.objects.get(channel="phone")
    assert row.status == "failed" and "not public" in row.last_error
    assert alert_messages(json_receiver) == []


# --- encryption at rest ------------------------------------------------------------------------


@pytest.mark.django_db
def test_url_secrets_are_encrypted_at_rest_masked_on_display_and_never_logged(
    staff, loopback_allowed, ntfy_receiver, caplog
):
    token = "tk_Sup3rSecretAccessToken"
    topic = "itb-private-topic-7f3a9"
    url = f"ntfy://oncall:{token}@127.0.0.1:{ntfy_receiver.port}/{topic}"
    caplog.set_level(logging.DEBUG)
    method, problem = contacts.add_contact_method(user=staff["oncall"], label="Push", url=url)
    assert problem == ""
    assert ntfy_receiver.received[0]["body"]["topic"] == topic  # it did arrive, with the real topic

    dump = io.StringIO()
    call_command("dumpdata", "alerts", stdout=dump)
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM alerts_contactmethod")
        raw = repr(cursor.fetchall())
    for secret in (token, topic):
        assert secret not in dump.getvalue() and secret not in raw
        assert secret not in method.display and secret not in str(method)
        assert secret not in caplog.text
    assert crypto.decrypt(method.url_encrypted) == url
    assert method.display.startswith(f"ntfy://127.0.0.1:{ntfy_receiver.port}/…")


@pytest.mark.django_db
def test_key_rotation_reencrypts_every_method(staff, settings, loopback_allowed, json_receiver):
    method = verified_method(staff["oncall"], json_receiver, "Gateway")
    old_key = settings.NOTIFY_ENCRYPTION_KEYS[0]
    new_key = "bmV3LWtleS1mb3Itcm90YXRpb24tdGVzdC0wMDAwMDA="
    settings.NOTIFY_ENCRYPTION_KEYS = [new_key, old_key]
    out = io.StringIO()
    call_command("rotate_notify_keys", stdout=out)
    assert "1 contact method" in out.getvalue()
    settings.NOTIFY_ENCRYPTION_KEYS = [new_key]  # the old key is dropped
    method.refresh_from_db()
    assert crypto.decrypt(method.url_encrypted) == json_receiver.url()


# --- rules and their timeline ------------------------------------------------------------------


@pytest.fixture
def two_methods(staff, loopback_allowed, ntfy_receiver, json_receiver):
    """The on-call nurse's push app (ntfy, first) and the hospital's paging gateway (json, second)."""
    push = verified_method(staff["oncall"], ntfy_receiver, "Push")
    pager = verified_method(staff["oncall"], json_receiver, "Pager")
    return push, pager


@pytest.mark.django_db
def test_emergency_reaches_push_at_once_and_the_second_method_five_minutes_later(
    clinic, staff, two_methods, ntfy_receiver, json_receiver
):
    alert = emergency(clinic, staff)
    with time_machine.travel(ALARM_AT, tick=False):
        engine.advance_escalations(ALARM_AT)
        deliver_due(ALARM_AT)
    mine = Notification.objects.filter(recipient=staff["oncall"]).exclude(channel="in_app").order_by("step")
    assert [(n.channel, n.contact_method_id, n.status) for n in mine] == [
        ("email", None, "sent"),
        ("phone", two_methods[0].pk, "sent"),
        ("phone", two_methods[1].pk, "pending"),
    ]
    push = alert_messages(ntfy_receiver)
    assert len(push) == 1 and alert.reference in push[0]
    assert alert_messages(json_receiver) == []

    with time_machine.travel(ALARM_AT + timedelta(minutes=4, seconds=59), tick=False):
        assert set(deliver_due(ALARM_AT + timedelta(minutes=4, seconds=59)).values()) == {"skipped"}
    assert alert_messages(json_receiver) == []

    with time_machine.travel(ALARM_AT + timedelta(minutes=5), tick=False):
        assert list(deliver_due(ALARM_AT + timedelta(minutes=5)).values()) == ["sent"]
    pager = alert_messages(json_receiver)
    assert len(pager) == 1 and alert.reference in pager[0]
    assert len(alert_messages(ntfy_receiver)) == 1  # never twice
    assert deliver_due(ALARM_AT + timedelta(minutes=6)) == {}


@pytest.mark.django_db
def test_acknowledged_at_minute_three_the_second_method_never_goes(
    clinic, staff, two_methods, ntfy_receiver, json_receiver
):
    alert = emergency(clinic, staff)
    with time_machine.travel(ALARM_AT, tick=False):
        engine.advance_escalations(ALARM_AT)
        deliver_due(ALARM_AT)
    assert len(alert_messages(ntfy_receiver)) == 1
    with time_machine.travel(ALARM_AT + timedelta(minutes=3), tick=False):
        alert_services.acknowledge_alert(alert=alert, actor=staff["oncall"], now=ALARM_AT + timedelta(minutes=3))
    second = Notification.objects.get(contact_method=two_methods[1])
    assert second.status == "cancelled"
    with time_machine.travel(ALARM_AT + timedelta(minutes=5), tick=False):
        assert delivery.deliver(second.pk, ALARM_AT + timedelta(minutes=5)) == "skipped"
        engine.run_scan(ALARM_AT + timedelta(minutes=5))
        deliver_due(ALARM_AT + timedelta(minutes=5))
    assert alert_messages(json_receiver) == []


@pytest.mark.django_db
def test_acknowledged_while_the_step_was_already_claimed_still_does_not_go(clinic, staff, two_methods, json_receiver):
    alert = emergency(clinic, staff)
    engine.advance_escalations(ALARM_AT)
    second = Notification.objects.get(contact_method=two_methods[1])
    # The acknowledgement lands between a worker's claim and its send: delivery checks again.
    Alert.objects.filter(pk=alert.pk).update(status=Alert.Status.ACKNOWLEDGED)
    assert delivery.deliver(second.pk, ALARM_AT + timedelta(minutes=5)) == "cancelled"
    assert alert_messages(json_receiver) == []


@pytest.mark.django_db
def test_reminders_stay_email_only_by_default(staff, two_methods):
    rules = PersonalRules([staff["oncall"].pk])
    assert [(s.method, s.after_minutes) for s in rules.steps_for(staff["oncall"].pk, Severity.REMINDER)] == [
        ("email", 0)
    ]
    assert [(s.method, s.after_minutes) for s in rules.steps_for(staff["oncall"].pk, Severity.URGENT)] == [
        ("email", 0),
        (two_methods[0].pk, 0),
        (two_methods[1].pk, 5),
    ]


@pytest.mark.django_db
def test_personal_rule_replaces_the_defaults_for_its_severity(clinic, staff, two_methods, json_receiver):
    push, pager = two_methods
    contacts.save_notification_rule(
        user=staff["oncall"],
        severity=Severity.EMERGENCY,
        steps=[{"method": pager.pk, "after_minutes": 0}, {"method": "email", "after_minutes": 10}],
    )
    emergency(clinic, staff)
    engine.advance_escalations(ALARM_AT)
    mine = Notification.objects.filter(recipient=staff["oncall"]).exclude(channel="in_app").order_by("step")
    assert [(n.channel, n.contact_method_id, n.next_attempt_at) for n in mine] == [
        ("phone", pager.pk, None),
        ("email", None, ALARM_AT + timedelta(minutes=10)),
    ]
    deliver_due(ALARM_AT)
    assert len(alert_messages(json_receiver)) == 1


@pytest.mark.django_db
def test_rule_steps_are_validated(staff, two_methods):
    other = member(staff["nurse"].memberships.get().clinic, Role.NURSE, username="nurse-z")
    own_elsewhere = ContactMethod.objects.create(
        user=other,
        label="x",
        scheme="json",
        url_encrypted=crypto.encrypt("json://x/y"),
        display="-",
        created_at=ALARM_AT,
    )
    bad = [
        [],
        [{"method": own_elsewhere.pk, "after_minutes": 0}],  # somebody else's method
        [{"method": "sms", "after_minutes": 0}],
        [{"method": "email", "after_minutes": -1}],
        [{"method": "email", "after_minutes": 24 * 60 + 1}],
        [{"method": "email", "after_minutes": 0}, {"method": "email", "after_minutes": 0}],
    ]
    for steps in bad:
        with pytest.raises(ValidationError):
            contacts.save_notification_rule(user=staff["oncall"], severity=Severity.URGENT, steps=steps)


@pytest.mark.django_db
def test_each_person_a_level_names_is_reached_by_their_own_rules(clinic, staff, two_methods):
    # The physician has no phone method: email (and the inbox) as before; the on-call nurse: phone too.
    emergency(clinic, staff)
    engine.advance_escalations(ALARM_AT)
    by_person = {}
    for n in Notification.objects.exclude(channel="in_app"):
        by_person.setdefault(n.recipient.username, []).append(n.channel)
    assert sorted(by_person["dr-b"]) == ["email"]
    assert sorted(by_person["nurse-oncall"]) == ["email", "phone", "phone"]


# --- the message --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_phone_message_is_short_and_names_no_patient(clinic, staff, two_methods, ntfy_receiver):
    alert = emergency(clinic, staff)
    engine.advance_escalations(ALARM_AT)
    deliver_due(ALARM_AT)
    (message,) = alert_messages(ntfy_receiver)
    patient, pump = alert.pump.patient, alert.pump
    assert len(message) <= 160
    assert alert.reference in message and "EMERGENCY" in message and "Pump alarm" in message
    assert message.endswith(f"https://itb.clinic.example/alerts/{alert.pk}/")
    for identifier in (patient.given_name, patient.family_name, patient.mrn, pump.serial_number, "1970"):
        assert identifier not in message


@pytest.mark.django_db
def test_message_stays_within_160_characters_with_a_long_site_url(clinic, staff, settings):
    settings.SITE_URL = "https://" + "itb-tracker-regional-pump-clinic." * 3 + "example.org"
    alert = emergency(clinic, staff)
    message = phone.short_message(alert)
    assert len(message) <= 160 and message.endswith(f"/alerts/{alert.pk}/") and alert.reference in message


# --- failures ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_provider_4xx_is_permanent_and_flags_the_method_to_owner_and_admins(clinic, staff, two_methods, ntfy_receiver):
    push, _ = two_methods
    ntfy_receiver.status = 403
    emergency(clinic, staff)
    engine.advance_escalations(ALARM_AT)
    outcomes = deliver_due(ALARM_AT)
    row = Notification.objects.get(contact_method=push)
    assert outcomes[row.pk] == "failed" and row.attempts == 1 and "HTTP 403" in row.last_error
    push.refresh_from_db()
    assert push.state == "failing" and push.failing_since == ALARM_AT and "403" in push.last_error
    flagged = FailingAddress.objects.get(channel="phone")
    assert flagged.clinic == clinic and flagged.address == push.address
    assert AlertEvent.objects.filter(kind="failed", detail__contains=" (Push)").exists()


@pytest.mark.django_db
def test_provider_5xx_is_transient_and_retried(clinic, staff, two_methods, ntfy_receiver):
    push, _ = two_methods
    ntfy_receiver.status = 503
    alert = emergency(clinic, staff)
    engine.advance_escalations(ALARM_AT)
    row = Notification.objects.get(contact_method=push)
    assert delivery.deliver(row.pk, ALARM_AT) == "retry"
    row.refresh_from_db()
    assert row.status == "pending" and row.next_attempt_at == ALARM_AT + timedelta(seconds=30)
    assert "HTTP 503" in row.last_error and not FailingAddress.objects.exists()
    ntfy_receiver.status = 200
    assert delivery.deliver(row.pk, ALARM_AT + timedelta(seconds=30)) == "sent"
    push.refresh_from_db()
    assert push.consecutive_failures == 0 and push.state == "verified"
    assert len(alert_messages(ntfy_receiver)) == 2 and alert.reference in alert_messages(ntfy_receiver)[-1]


@pytest.mark.django_db
def test_timeout_is_transient(clinic, staff, settings, two_methods, json_receiver):
    _, pager = two_methods
    settings.NOTIFY_TIMEOUT_SECONDS = 0.5
    json_receiver.delay_seconds = 2
    emergency(clinic, staff)
    engine.advance_escalations(ALARM_AT)
    row = Notification.objects.get(contact_method=pager)
    assert delivery.deliver(row.pk, ALARM_AT + timedelta(minutes=5)) == "retry"
    row.refresh_from_db()
    assert "connection error or timeout" in row.last_error


@pytest.mark.django_db
def test_five_failures_in_a_row_suspend_the_method_until_it_is_verified_again(
    clinic, staff, settings, two_methods, ntfy_receiver
):
    push, _ = two_methods
    settings.NOTIFICATION_MAX_ATTEMPTS = 10
    ntfy_receiver.status = 502
    emergency(clinic, staff)
    engine.advance_escalations(ALARM_AT)
    row = Notification.objects.get(contact_method=push)
    now = ALARM_AT
    outcomes = []
    for _ in range(5):
        outcomes.append(delivery.deliver(row.pk, now))
        now += timedelta(minutes=20)
    assert outcomes == ["retry", "retry", "retry", "retry", "failed"]
    push.refresh_from_db()
    assert push.state == "suspended" and push.consecutive_failures == 5 and not push.is_usable
    assert FailingAddress.objects.filter(address=push.address, cleared_at__isnull=True).exists()

    # The next escalation round leaves the suspended method out.
    engine.advance_escalations(ALARM_AT + timedelta(minutes=30))
    newer = Notification.objects.filter(recipient=staff["oncall"], created_at=ALARM_AT + timedelta(minutes=30))
    assert push.pk not in {n.contact_method_id for n in newer}

    # Re-verifying (a new code through the method) lifts the suspension.
    ntfy_receiver.status = 200
    assert contacts.send_verification_code(method=push, user=staff["oncall"], now=now) == ""
    push = contacts.verify_contact_method(method=push, user=staff["oncall"], code=ntfy_receiver.last_code(), now=now)
    assert push.is_usable and push.consecutive_failures == 0
    assert not FailingAddress.objects.filter(address=push.address, cleared_at__isnull=True).exists()


@pytest.mark.django_db
def test_removed_method_stops_at_once(clinic, staff, two_methods, json_receiver):
    _, pager = two_methods
    emergency(clinic, staff)
    engine.advance_escalations(ALARM_AT)
    contacts.remove_contact_method(method=pager, user=staff["oncall"], now=ALARM_AT + timedelta(minutes=1))
    deliver_due(ALARM_AT + timedelta(minutes=5))
    assert Notification.objects.get(contact_method=pager).status == "cancelled"
    assert alert_messages(json_receiver) == []


# --- the lookup pin (DNS rebinding) -----------------------------------------------------------


def test_a_name_is_resolved_once_per_send_and_the_checked_answer_is_the_one_connected_to(monkeypatch, settings):
    """A resolver that answers a public address first and a loopback one next (rebinding): the
    guard checks the first answer and every later lookup in the same send gets that same answer.
    The resolver is the only stand-in here (no DNS server runs in tests)."""
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    answers = iter(["93.184.216.34", "127.0.0.1"])

    def rebinding_resolver(host, port, *args, **kwargs):
        import socket

        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

    monkeypatch.setattr(phone, "_system_getaddrinfo", rebinding_resolver)
    guard = phone._GuardedLookup()
    first = guard.resolve("pager.example.org", 443)
    second = guard.resolve("pager.example.org", 443)
    assert first == second and first[0][4][0] == "93.184.216.34"
    # A fresh send resolves again, and the loopback answer is refused.
    with pytest.raises(phone.DestinationRefused):
        phone._GuardedLookup().resolve("pager.example.org", 443)


def test_lookups_outside_a_send_are_untouched():
    import socket

    phone._install_lookup_hook()
    assert socket.getaddrinfo("127.0.0.1", 80)[0][4][0] == "127.0.0.1"  # no guard active: loopback resolves


@pytest.mark.django_db
def test_method_whose_key_was_dropped_fails_permanently(clinic, staff, settings, two_methods):
    push, _ = two_methods
    emergency(clinic, staff)
    engine.advance_escalations(ALARM_AT)
    settings.NOTIFY_ENCRYPTION_KEYS = ["bmV3LWtleS1mb3Itcm90YXRpb24tdGVzdC0wMDAwMDA="]  # old key dropped, not rotated
    row = Notification.objects.get(contact_method=push)
    assert delivery.deliver(row.pk, ALARM_AT) == "failed"
    row.refresh_from_db()
    assert "encryption key missing" in row.last_error
