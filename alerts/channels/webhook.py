"""Webhooks: a JSON POST signed with HMAC-SHA256 (header ``X-ITB-Signature: sha256=<hex>``).

The destination is checked and pinned by ``destinations`` (resolved once, public or admitted
addresses only, no redirects): a webhook must never become a way into the clinic's network.
"""

import hashlib
import hmac
import json

from . import Permanent, message_fields
from .destinations import Destination, post, resolve


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def check_destination(url: str) -> Destination:
    """Raise for a URL the clinic may not post alerts to; return it pinned to its checked address."""
    return resolve(url)


def send(notification) -> None:
    from ..models import Webhook

    hook = Webhook.objects.filter(clinic_id=notification.alert.clinic_id, url=notification.address).first()
    if hook is None or not hook.is_active:
        raise Permanent("webhook removed or disabled")
    destination = resolve(hook.url)  # resolved once; the POST goes to this very address
    body = json.dumps({"event": "alert", **message_fields(notification.alert)}).encode()
    post(
        destination,
        body,
        {
            "Content-Type": "application/json",
            "User-Agent": "ITB-Tracker-Webhook/1",
            "X-ITB-Signature": signature(hook.secret, body),
        },
    )
