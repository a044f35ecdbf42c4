"""Webhook destinations cannot be steered inside the clinic's network (issue 9, item 2).

Each bypass is tried against local servers: a TLS receiver standing for the clinic's admitted
receiver and a plain recorder standing for a server inside the network. Host names are answered
by a resolver the test controls (so an answer can change between two lookups, as in DNS
rebinding)."""

import socket
from datetime import UTC, datetime

import pytest
from django.core.exceptions import ValidationError

from alerts import engine, services
from alerts.channels import Permanent, destinations
from alerts.delivery import deliver
from alerts.models import AlertEvent, AlertKind, FailingAddress, Notification, Severity, Webhook

from .factories import filled_pump
from .local_https import make_ca, serve

NOW = datetime(2026, 2, 1, 12, tzinfo=UTC)


@pytest.fixture
def resolver(monkeypatch):
    """Answers test host names from ``resolver.answers[host]`` (a list consumed one answer per
    lookup, the last one repeating); other names go to the real resolver."""
    real = socket.getaddrinfo

    class Resolver:
        answers: dict[str, list[str]] = {}
        lookups: list[str] = []

        def __call__(self, host, port, *args, **kwargs):
            if host not in self.answers:
                return real(host, port, *args, **kwargs)
            self.lookups.append(host)
            queue = self.answers[host]
            address = queue.pop(0) if len(queue) > 1 else queue[0]
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            return [(family, socket.SOCK_STREAM, 6, "", (address, port))]

    fake = Resolver()
    fake.answers, fake.lookups = {}, []
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return fake


@pytest.fixture
def ca(tmp_path):
    return make_ca(tmp_path, ["hooks.example.test"])


def same_port_pair(ca):
    """A TLS receiver on 127.0.0.2 and an 'internal' recorder on 127.0.0.1, on the same port."""
    for _ in range(20):
        receiver = serve("127.0.0.2", 0, ca)
        try:
            internal = serve("127.0.0.1", receiver.port)
        except OSError:
            receiver.stop()
            continue
        return receiver, internal
    raise RuntimeError("no free port pair")


def webhook_notification(clinic, nurse, url):
    pump = filled_pump(clinic, nurse)
    alert, _ = engine.raise_alert(
        pump_id=pump.pk, clinic_id=clinic.pk, kind=AlertKind.REFILL_OVERDUE, severity=Severity.URGENT, now=NOW
    )
    Webhook.objects.create(clinic=clinic, url=url, secret="s3cret")
    return Notification.objects.create(alert=alert, step="0:0", channel="webhook", address=url, created_at=NOW)


@pytest.mark.django_db
def test_dns_rebinding_after_the_check_cannot_reach_an_internal_server(clinic, nurse, settings, resolver, ca):
    """The name answers an admitted address once, then an internal one: the POST still goes to
    the address that was checked, with the name for TLS and Host."""
    settings.WEBHOOK_ALLOW_PRIVATE = False
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.2/32"]  # the hospital's receiver network
    settings.WEBHOOK_CA_FILE = str(ca.ca_file)
    receiver, internal = same_port_pair(ca)
    try:
        resolver.answers["hooks.example.test"] = ["127.0.0.2", "127.0.0.1"]
        url = f"https://hooks.example.test:{receiver.port}/itb?x=1"
        notification = webhook_notification(clinic, nurse, url)

        assert deliver(notification.pk, now=NOW) == "sent"

        assert internal.connections == 0
        [seen] = receiver.requests
        assert seen.path == "/itb?x=1"
        assert seen.sni == "hooks.example.test"
        assert seen.headers["Host"] == f"hooks.example.test:{receiver.port}"
        assert seen.headers["X-ITB-Signature"].startswith("sha256=")
        assert resolver.lookups == ["hooks.example.test"]  # resolved once per delivery
    finally:
        receiver.stop()
        internal.stop()


@pytest.mark.django_db
def test_a_name_answering_an_internal_address_among_public_ones_is_refused(clinic, nurse, settings, resolver):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    internal = serve("127.0.0.1", 0)
    real = socket.getaddrinfo

    def mixed(host, port, *args, **kwargs):
        if host == "mixed.example.test":
            return [
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
            ]
        return real(host, port, *args, **kwargs)

    socket.getaddrinfo = mixed
    try:
        with pytest.raises(destinations.RefusedDestination, match="not public"):
            destinations.resolve(f"https://mixed.example.test:{internal.port}/")
    finally:
        socket.getaddrinfo = resolver
        internal.stop()
    assert internal.connections == 0


@pytest.mark.django_db
@pytest.mark.parametrize("target", ["internal-address", "https-to-http"])
def test_a_redirect_is_a_failed_delivery_never_followed(clinic, nurse, settings, resolver, ca, target):
    """A receiver answering 302 towards an internal server (or from https down to http)."""
    settings.WEBHOOK_ALLOW_PRIVATE = False
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.2/32"]
    settings.WEBHOOK_CA_FILE = str(ca.ca_file)
    receiver = serve("127.0.0.2", 0, ca)
    internal = serve("127.0.0.1", 0)
    try:
        resolver.answers["hooks.example.test"] = ["127.0.0.2"]
        resolver.answers["plain.example.test"] = ["127.0.0.1"]
        receiver.reply_status = 302
        receiver.reply_headers = {
            "Location": f"http://127.0.0.1:{internal.port}/latest/meta-data/"
            if target == "internal-address"
            else f"http://plain.example.test:{internal.port}/itb"
        }
        notification = webhook_notification(clinic, nurse, f"https://hooks.example.test:{receiver.port}/itb")

        assert deliver(notification.pk, now=NOW) == "failed"

        assert len(receiver.requests) == 1
        assert internal.connections == 0
        notification.refresh_from_db()
        assert notification.last_error == "HTTP 302: redirects are not followed"
    finally:
        receiver.stop()
        internal.stop()


@pytest.mark.django_db
def test_a_redirect_is_not_followed_even_where_private_destinations_are_allowed(clinic, nurse, settings):
    """WEBHOOK_ALLOW_PRIVATE (tests, labs) admits any address, never a redirect."""
    settings.WEBHOOK_ALLOW_PRIVATE = True
    receiver = serve("127.0.0.1", 0)
    internal = serve("127.0.0.1", 0)
    try:
        receiver.reply_status = 302
        receiver.reply_headers = {"Location": f"http://127.0.0.1:{internal.port}/admin"}
        notification = webhook_notification(clinic, nurse, f"http://127.0.0.1:{receiver.port}/itb")

        assert deliver(notification.pk, now=NOW) == "failed"

        assert internal.connections == 0
    finally:
        receiver.stop()
        internal.stop()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "address",
    [
        "100.64.0.1",  # carrier-grade NAT (not is_private, not is_global)
        "100.100.100.200",  # a cloud metadata service inside 100.64.0.0/10
        "169.254.169.254",  # link-local metadata
        "10.1.2.3",
        "::ffff:127.0.0.1",  # IPv4-mapped loopback
        "fd00::1",
        "0.0.0.0",
    ],
)
def test_an_address_that_is_not_public_is_refused_when_the_webhook_is_added(
    clinic, clinic_admin, settings, resolver, address
):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    resolver.answers["hooks.example.test"] = [address]

    with pytest.raises(ValidationError) as refused:
        services.add_webhook(clinic=clinic, actor=clinic_admin, url="https://hooks.example.test/itb")

    assert "refused destination" in str(refused.value.message_dict["url"])
    assert not Webhook.objects.exists()


@pytest.mark.django_db
def test_the_operator_admits_the_hospital_network_and_nothing_else(clinic, clinic_admin, settings, resolver):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    settings.WEBHOOK_ALLOWED_NETWORKS = ["10.20.0.0/16"]
    resolver.answers["in.example.test"] = ["10.20.3.4"]
    resolver.answers["out.example.test"] = ["10.21.3.4"]

    services.add_webhook(clinic=clinic, actor=clinic_admin, url="https://in.example.test/itb")
    with pytest.raises(ValidationError):
        services.add_webhook(clinic=clinic, actor=clinic_admin, url="https://out.example.test/itb")
    with pytest.raises(ValidationError, match="https only"):
        services.add_webhook(clinic=clinic, actor=clinic_admin, url="http://in.example.test/itb")


@pytest.mark.django_db
def test_an_address_turning_internal_before_a_delivery_fails_it_without_connecting(clinic, nurse, settings, resolver):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    internal = serve("127.0.0.1", 0)
    try:
        resolver.answers["hooks.example.test"] = ["127.0.0.1"]
        notification = webhook_notification(clinic, nurse, f"https://hooks.example.test:{internal.port}/itb")

        assert deliver(notification.pk, now=NOW) == "failed"

        assert internal.connections == 0
        notification.refresh_from_db()
        assert notification.last_error.startswith("refused destination")
    finally:
        internal.stop()


@pytest.mark.django_db
def test_admins_see_the_category_of_a_failure_never_the_body_of_an_internal_reply(
    clinic, nurse, settings, resolver, ca
):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.2/32"]
    settings.WEBHOOK_CA_FILE = str(ca.ca_file)
    receiver = serve("127.0.0.2", 0, ca)
    try:
        resolver.answers["hooks.example.test"] = ["127.0.0.2"]
        receiver.reply_status = 403
        receiver.reply_body = b"internal: db password hunter2"
        notification = webhook_notification(clinic, nurse, f"https://hooks.example.test:{receiver.port}/itb")

        assert deliver(notification.pk, now=NOW) == "failed"

        failing = FailingAddress.objects.get(clinic=clinic)
        assert failing.last_error == "HTTP 403"
        shown = " ".join(AlertEvent.objects.values_list("detail", flat=True))
        assert "hunter2" not in shown and "HTTP 403" in shown
    finally:
        receiver.stop()


@pytest.mark.django_db
def test_a_certificate_for_another_name_is_a_tls_error(clinic, nurse, settings, resolver, tmp_path):
    """Pinning the address never weakens the certificate check: it is made against the URL's name."""
    other = make_ca(tmp_path, ["other.example.test"])
    settings.WEBHOOK_ALLOW_PRIVATE = False
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.2/32"]
    settings.WEBHOOK_CA_FILE = str(other.ca_file)
    receiver = serve("127.0.0.2", 0, other)
    try:
        resolver.answers["hooks.example.test"] = ["127.0.0.2"]
        destination = destinations.resolve(f"https://hooks.example.test:{receiver.port}/itb")
        with pytest.raises(Exception, match="TLS error") as failed:
            destinations.post(destination, b"{}", {"Content-Type": "application/json"})
        assert not isinstance(failed.value, Permanent)  # worth retrying: a certificate gets fixed
        assert receiver.requests == []
    finally:
        receiver.stop()
