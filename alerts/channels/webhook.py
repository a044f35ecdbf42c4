"""Webhooks: a JSON POST signed with HMAC-SHA256 (header ``X-ITB-Signature: sha256=<hex>``).

HTTPS only, and private, loopback and link-local destinations are refused unless
``WEBHOOK_ALLOW_PRIVATE`` is set (a webhook must never become a way into the clinic's network).
"""

import hashlib
import hmac
import ipaddress
import json
import socket
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from django.conf import settings

from . import Permanent, Transient, message_fields


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def check_destination(url: str) -> None:
    """Raise Permanent for a URL the clinic may not post alerts to."""
    parts = urlsplit(url)
    allow_private = settings.WEBHOOK_ALLOW_PRIVATE
    if parts.scheme != "https" and not (allow_private and parts.scheme == "http"):
        raise Permanent("webhooks must use https")
    if not parts.hostname:
        raise Permanent("webhook URL has no host")
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    except socket.gaierror as exc:
        raise Transient(f"cannot resolve {parts.hostname}: {exc}") from exc
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not allow_private and (
            address.is_private
            or address.is_loopback
            or address.is_link_local
            or address.is_reserved
            or address.is_multicast
            or address.is_unspecified
        ):
            raise Permanent(f"{parts.hostname} resolves to a private or loopback address")


def send(notification) -> None:
    from ..models import Webhook

    hook = Webhook.objects.filter(clinic_id=notification.alert.clinic_id, url=notification.address).first()
    if hook is None or not hook.is_active:
        raise Permanent("webhook removed or disabled")
    check_destination(hook.url)
    body = json.dumps({"event": "alert", **message_fields(notification.alert)}).encode()
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        hook.url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "ITB-Tracker-Webhook/1",
            "X-ITB-Signature": signature(hook.secret, body),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            response.read(1024)
    except urllib.error.HTTPError as exc:
        if exc.code == 429 or exc.code >= 500:
            raise Transient(f"HTTP {exc.code}") from exc
        raise Permanent(f"HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise Transient(f"{type(exc).__name__}: {exc}") from exc
