"""Notification channels. Each ``send(notification)`` returns on success, raises ``Transient`` for a
failure worth retrying and ``Permanent`` for one that will not heal by waiting.

No channel ever carries a patient identifier: an alert reference, its kind and urgency, a link.
"""

from django.conf import settings


class DeliveryError(Exception):
    pass


class Transient(DeliveryError):
    """Worth retrying with back-off (connection refused, timeout, a 4xx SMTP reply, HTTP 5xx)."""


class Permanent(DeliveryError):
    """Will not heal by waiting (address refused, webhook answered 4xx, a refused destination)."""


def alert_link(alert) -> str:
    return f"{settings.SITE_URL}/alerts/{alert.pk}/"


def message_fields(alert) -> dict:
    """Everything a message may say about an alert: no name, MRN, birth date or serial number."""
    zone = alert.clinic.zone
    return {
        "reference": alert.reference,
        "kind": alert.kind,
        "kind_label": alert.get_kind_display(),
        "severity": alert.get_severity_display().lower(),
        "status": alert.status,
        # In the clinic's zone, with its offset: what the staff reading it live by.
        "raised_at": alert.raised_at.astimezone(zone).isoformat(),
        "raised_at_local": f"{alert.raised_at.astimezone(zone):%Y-%m-%d %H:%M} ({alert.clinic.timezone})",
        "url": alert_link(alert),
    }


def get_channel(name: str):
    from . import email, phone, webhook

    return {"email": email, "webhook": webhook, "phone": phone}[name]
