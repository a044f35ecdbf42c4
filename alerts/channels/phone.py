"""Phone and chat messages through apprise: one URL per destination (ntfy, Pushover, Twilio SMS,
Slack, a hospital's own ``json://`` paging gateway …).

Apprise's ``notify()`` only answers True or False; what went wrong is in its log. We read that
log in memory (``apprise.LogCapture``) to tell a provider's 4xx (permanent: the method is wrong)
from a 5xx, a 429 or no answer at all (transient: try again). Nothing apprise logs reaches the
application's log (settings: the ``apprise`` logger is silenced), because it names the URL.

Destinations: every address apprise connects to while sending is checked as it is resolved — the
hostname lookup itself runs through the destination guard (``_GuardedLookup``), so the address
checked is the address connected to, and a name that resolves elsewhere between a check and the
connection (DNS rebinding) cannot slip past. Redirects are switched off on every URL.
"""

from __future__ import annotations

import contextvars
import logging
import re
import socket
from urllib.parse import urlsplit

import apprise
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from . import Permanent, Transient, alert_link, destinations

MAX_LENGTH = 160
# Schemes whose URL host is where apprise posts (self-hosted servers): checked before sending too.
SELF_HOSTED = {"json", "jsons", "ntfy", "ntfys"}
# Apprise logs "…error=404." (ntfy: its own 5-digit code, e.g. 40301, whose first 3 digits are HTTP's).
_HTTP_CODE = re.compile(r"error=(\d{3})(?:\d{2})?\b")


# --- destination guard ---------------------------------------------------------------------------


def refusal(address: str) -> str | None:
    """Why apprise may not connect to ``address`` (None: it may): the webhooks' destination rule
    (``channels.destinations.address_allowed``: public addresses, or a network the operator admits
    in ``WEBHOOK_ALLOWED_NETWORKS``)."""
    return None if destinations.address_allowed(address) else "an address that is not public"


class DestinationRefused(socket.gaierror):
    pass


class _GuardedLookup:
    """Every name apprise resolves while this is active is resolved once, checked, and pinned: the
    connection gets exactly the addresses checked."""

    def __init__(self):
        self.pinned: dict[str, list] = {}
        self.refused: list[str] = []

    def resolve(self, host, port, *args, **kwargs):
        key = str(host).lower()
        if key not in self.pinned:
            infos = _system_getaddrinfo(host, port, *args, **kwargs)
            for info in infos:
                why = refusal(info[4][0])
                if why:
                    self.refused.append(f"{host} resolves to {why}")
                    raise DestinationRefused(socket.EAI_FAIL, f"destination refused: {host}")
            self.pinned[key] = infos
        return self.pinned[key]


_active_lookup: contextvars.ContextVar[_GuardedLookup | None] = contextvars.ContextVar("itb_guard", default=None)
_system_getaddrinfo = socket.getaddrinfo


def _getaddrinfo(host, port, *args, **kwargs):
    # A context variable, not a thread-local: apprise runs a send on its executor's threads with a
    # copy of the caller's context, which carries this guard along.
    guard = _active_lookup.get()
    if guard is None:
        return _system_getaddrinfo(host, port, *args, **kwargs)
    return guard.resolve(host, port, *args, **kwargs)


def _install_lookup_hook() -> None:
    if socket.getaddrinfo is not _getaddrinfo:
        socket.getaddrinfo = _getaddrinfo


# --- URLs and messages -----------------------------------------------------------------------


def scheme_of(url: str) -> str:
    return urlsplit(url.strip()).scheme.lower()


def check_url(url: str):
    """The apprise plugin for ``url``, or Permanent: a scheme the operator does not allow, a URL
    apprise cannot parse, or a self-hosted destination that resolves to a refused address."""
    scheme = scheme_of(url)
    if scheme not in settings.NOTIFY_ALLOWED_SCHEMES:
        allowed = ", ".join(settings.NOTIFY_ALLOWED_SCHEMES)
        raise Permanent(f"“{scheme or '(none)'}://” is not an allowed kind of address (allowed: {allowed})")
    plugin = apprise.Apprise.instantiate(url, asset=_asset(), suppress_exceptions=True)
    if plugin is None:
        raise Permanent(f"this is not a {scheme}:// address apprise understands")
    plugin.redirects = False
    plugin.socket_connect_timeout = settings.NOTIFY_TIMEOUT_SECONDS
    plugin.socket_read_timeout = settings.NOTIFY_TIMEOUT_SECONDS
    return plugin


def check_destination(url: str) -> None:
    """Everything ``send_text`` checks before sending, without sending: for the form."""
    _precheck(check_url(url), _GuardedLookup())


def _asset():
    return apprise.AppriseAsset(http_redirects=False)


def _precheck(plugin, guard: _GuardedLookup) -> None:
    """A self-hosted server's name is resolved and checked before apprise gets the URL (and pinned)."""
    if plugin.secure_protocol not in SELF_HOSTED and plugin.protocol not in SELF_HOSTED:
        return
    if getattr(plugin, "mode", None) == "cloud":  # ntfy://topic posts to ntfy.sh
        return
    host = (getattr(plugin, "host", None) or "").strip("[]")  # an IPv6 literal comes bracketed
    if not host:
        return
    try:
        guard.resolve(host, getattr(plugin, "port", None) or 443, type=socket.SOCK_STREAM)
    except DestinationRefused as exc:
        raise Permanent(guard.refused[-1] if guard.refused else "destination refused") from exc
    except OSError as exc:
        raise Transient(f"cannot resolve {host}") from exc


def short_message(alert) -> str:
    """At most 160 characters: reference, kind, urgency and link — nothing about the patient."""
    link = alert_link(alert)
    head = f"ITB {alert.get_severity_display().upper()} {alert.reference}: "
    kind = alert.get_kind_display()
    room = MAX_LENGTH - len(head) - len(link) - 1
    if len(kind) > room:
        kind = kind[: max(room - 1, 0)] + "…" if room > 1 else ""
    return f"{head}{kind} {link}"[:MAX_LENGTH]


def notify_type(alert) -> str:
    from ..models import Severity

    return apprise.NotifyType.FAILURE if alert.severity >= Severity.URGENT else apprise.NotifyType.INFO


# --- sending -------------------------------------------------------------------------------


def send_text(url: str, body: str, kind: str = apprise.NotifyType.INFO) -> None:
    """Send ``body`` to one apprise URL; return on success, raise Transient or Permanent."""
    _install_lookup_hook()
    plugin = check_url(url)
    guard = _GuardedLookup()
    _precheck(plugin, guard)
    sender = apprise.Apprise(asset=_asset())
    sender.add(plugin)
    token = _active_lookup.set(guard)
    try:
        with apprise.LogCapture(level=logging.WARNING) as captured:
            ok = bool(sender.notify(body=body[:MAX_LENGTH], title="", notify_type=kind))
        text = captured.getvalue()
    finally:
        _active_lookup.reset(token)
    if ok:
        return
    raise classify(text, guard.refused)


def classify(log_text: str, refused: list[str] | None = None):
    """The failure apprise's log describes, without repeating the log (it names the URL)."""
    if refused:
        return Permanent(f"destination refused: {refused[0]}")
    codes = [int(code) for code in _HTTP_CODE.findall(log_text)]
    if codes:
        code = codes[-1]
        if 400 <= code < 500 and code not in (408, 425, 429):
            return Permanent(f"the provider refused the message (HTTP {code})")
        return Transient(f"the provider failed (HTTP {code})")
    if "connection error" in log_text.lower() or "timed out" in log_text.lower():
        return Transient("no answer from the provider (connection error or timeout)")
    return Transient("the message was not accepted (no reason given)")


def send(notification) -> None:
    """Deliver one alert notification to its contact method."""
    from .. import crypto

    method = notification.contact_method
    if method is None or not method.is_usable:
        raise Permanent("the contact method was removed, suspended or is not verified")
    alert = notification.alert
    try:
        url = crypto.decrypt(method.url_encrypted)
    except ImproperlyConfigured as exc:  # its key was dropped before rotation: it will not heal
        raise Permanent("the method cannot be read (encryption key missing): its owner must add it again") from exc
    send_text(url, short_message(alert), notify_type(alert))
