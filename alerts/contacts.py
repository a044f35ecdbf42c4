"""Writes on a member's own contact methods and notification rules (the "My notifications" page).

Every function acts for ``user`` on that user's own rows only; views pass ``request.user``.
A method is verified before use: a 6-digit code goes out in a test message through the method
itself, and the member types it back. The code is stored as an HMAC, expires, and allows a few
tries. Failures while delivering alerts are recorded here too: a provider's 4xx flags the method,
and ``NOTIFY_SUSPEND_AFTER_FAILURES`` failures in a row suspend it until it is verified again.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.crypto import salted_hmac

from . import crypto
from .channels import DeliveryError
from .channels import phone as phone_channel
from .models import (
    EMAIL_STEP,
    Channel,
    ContactMethod,
    FailingAddress,
    Notification,
    NotificationRule,
    Severity,
)

log = logging.getLogger(__name__)

CODE_MINUTES = 15
CODE_TRIES = 5
RESEND_SECONDS = 30
MAX_METHODS = 10
MAX_STEPS = 6
MAX_AFTER_MINUTES = 24 * 60


def _code_hash(method_id: int, code: str) -> str:
    return salted_hmac("itb.contact-method-code", f"{method_id}:{code}").hexdigest()


def verification_text(code: str) -> str:
    return f"ITB Tracker verification code: {code}. Type it on My notifications to receive alerts here."


def add_contact_method(*, user, label: str, url: str, now: datetime | None = None) -> tuple[ContactMethod, str]:
    """Store a new (unverified) method and send its verification code.

    Returns the method and a problem sending the code ("" when it went out). The URL is refused
    (ValidationError on ``url``) when its scheme is not allowed, apprise cannot parse it, or it
    points at a refused address; nothing is stored then.
    """
    now = now or timezone.now()
    url = (url or "").strip()
    label = (label or "").strip()
    errors = {}
    if not label:
        errors["label"] = "Give it a name you will recognise, e.g. “Work phone”."
    if not url:
        errors["url"] = "Enter the address (an apprise URL such as ntfys://ntfy.example.org/your-topic)."
    if errors:
        raise ValidationError(errors)
    if len(url) > 1000:
        raise ValidationError({"url": "This address is too long."})
    try:
        phone_channel.check_destination(url)
    except DeliveryError as exc:
        raise ValidationError({"url": str(exc)}) from None
    if not crypto.is_configured():
        raise ValidationError({"url": "Phone and chat methods are not set up on this server (no encryption key)."})
    if ContactMethod.objects.filter(user=user, removed_at__isnull=True).count() >= MAX_METHODS:
        raise ValidationError({"url": f"You have {MAX_METHODS} methods already: remove one first."})
    method = ContactMethod.objects.create(
        user=user,
        label=label[:60],
        scheme=phone_channel.scheme_of(url),
        url_encrypted=crypto.encrypt(url),
        display=crypto.mask(url),
        created_at=now,
    )
    return method, send_verification_code(method=method, user=user, now=now)


def send_verification_code(*, method: ContactMethod, user, now: datetime | None = None) -> str:
    """Send a fresh code through the method. Returns "" when sent, else what went wrong."""
    now = now or timezone.now()
    if method.user_id != user.pk or method.removed_at:
        raise ValidationError({"method": "No such contact method."})
    issued_at = method.code_expires_at - timedelta(minutes=CODE_MINUTES) if method.code_expires_at else None
    if issued_at and now - issued_at < timedelta(seconds=RESEND_SECONDS):
        raise ValidationError({"method": "A code was sent moments ago: wait half a minute before asking again."})
    code = f"{secrets.randbelow(10**6):06d}"
    ContactMethod.objects.filter(pk=method.pk).update(
        code_hash=_code_hash(method.pk, code), code_expires_at=now + timedelta(minutes=CODE_MINUTES), code_attempts=0
    )
    method.refresh_from_db()
    try:
        phone_channel.send_text(crypto.decrypt(method.url_encrypted), verification_text(code))
    except DeliveryError as exc:
        ContactMethod.objects.filter(pk=method.pk).update(last_error=str(exc)[:300])
        log.info("contact method %s: verification message not sent: %s", method.pk, exc)
        return str(exc)
    except ImproperlyConfigured as exc:
        return str(exc)
    return ""


def verify_contact_method(*, method: ContactMethod, user, code: str, now: datetime | None = None) -> ContactMethod:
    """Check the code the member typed. A verified method receives alerts; verifying again lifts a
    suspension and clears its failure flags."""
    now = now or timezone.now()
    # The refusal is raised after the transaction commits: a wrong try must stay counted.
    with transaction.atomic():
        method = ContactMethod.objects.select_for_update().get(pk=method.pk)
        error = _code_refusal(method, user, (code or "").strip().replace(" ", ""), now)
        if error == WRONG_CODE:
            ContactMethod.objects.filter(pk=method.pk).update(code_attempts=F("code_attempts") + 1)
        elif not error:
            method.verified_at = now
            method.suspended_at = None
            method.failing_since = None
            method.consecutive_failures = 0
            method.last_error = ""
            method.code_hash = ""
            method.code_expires_at = None
            method.code_attempts = 0
            method.save()
            FailingAddress.objects.filter(
                channel=Channel.PHONE, address=method.address, cleared_at__isnull=True
            ).update(cleared_at=now)
    if error:
        raise ValidationError({"code": error})
    return method


WRONG_CODE = "That is not the code we sent."


def _code_refusal(method, user, code: str, now) -> str:
    if method.user_id != user.pk or method.removed_at:
        return "No such contact method."
    if not method.code_hash or method.code_expires_at is None or method.code_expires_at < now:
        return "This code has expired: send a new one."
    if method.code_attempts >= CODE_TRIES:
        return "Too many wrong codes: send a new one."
    if not (len(code) == 6 and code.isdigit() and hmac.compare_digest(method.code_hash, _code_hash(method.pk, code))):
        return WRONG_CODE
    return ""


@transaction.atomic
def remove_contact_method(*, method: ContactMethod, user, now: datetime | None = None) -> None:
    """Removed methods stop at once (their undelivered notifications are cancelled); the row stays
    for the notifications that point at it."""
    now = now or timezone.now()
    if method.user_id != user.pk or method.removed_at:
        raise ValidationError({"method": "No such contact method."})
    ContactMethod.objects.filter(pk=method.pk).update(removed_at=now, code_hash="", code_expires_at=None)
    Notification.objects.filter(contact_method=method, status=Notification.Status.PENDING).update(
        status=Notification.Status.CANCELLED, last_error="contact method removed"
    )
    FailingAddress.objects.filter(channel=Channel.PHONE, address=method.address, cleared_at__isnull=True).update(
        cleared_at=now
    )


@transaction.atomic
def save_notification_rule(*, user, severity: int, steps: list[dict], now: datetime | None = None) -> NotificationRule:
    """Replace the member's rule for one severity with ordered steps ``{method, after_minutes}``;
    ``method`` is "email" or the id of one of the member's own methods."""
    now = now or timezone.now()
    if severity not in Severity.values:
        raise ValidationError({"severity": "Unknown severity."})
    if not steps:
        raise ValidationError({"steps": "A rule needs at least one step."})
    if len(steps) > MAX_STEPS:
        raise ValidationError({"steps": f"At most {MAX_STEPS} steps."})
    own = set(ContactMethod.objects.filter(user=user, removed_at__isnull=True).values_list("pk", flat=True))
    clean = []
    for number, step in enumerate(steps, start=1):
        method = step.get("method")
        if method != EMAIL_STEP:
            try:
                method = int(method)
            except (TypeError, ValueError):
                method = None
            if method not in own:
                raise ValidationError({"steps": f"Step {number}: choose email or one of your own methods."})
        try:
            after = int(step.get("after_minutes", 0))
        except (TypeError, ValueError):
            after = -1
        if not 0 <= after <= MAX_AFTER_MINUTES:
            raise ValidationError({"steps": f"Step {number}: minutes must be between 0 and {MAX_AFTER_MINUTES}."})
        clean.append({"method": method, "after_minutes": after})
    if len({(s["method"], s["after_minutes"]) for s in clean}) != len(clean):
        raise ValidationError({"steps": "The same method at the same minute is listed twice."})
    clean.sort(key=lambda s: s["after_minutes"])
    rule, _ = NotificationRule.objects.update_or_create(
        user=user, severity=severity, defaults={"steps": clean, "updated_at": now}
    )
    return rule


def reset_notification_rule(*, user, severity: int) -> None:
    """Back to the defaults for this severity."""
    NotificationRule.objects.filter(user=user, severity=severity).delete()


# --- delivery outcomes (called by alerts.delivery) -------------------------------------------


def record_delivery_success(method_id: int) -> None:
    ContactMethod.objects.filter(pk=method_id).update(consecutive_failures=0, failing_since=None, last_error="")


def record_delivery_failure(method_id: int, error: str, *, permanent: bool, now: datetime) -> bool:
    """Count a failed attempt; a permanent one flags the method. Returns True when this failure
    suspended it (``NOTIFY_SUSPEND_AFTER_FAILURES`` in a row)."""
    changes = {"consecutive_failures": F("consecutive_failures") + 1, "last_error": error[:300]}
    ContactMethod.objects.filter(pk=method_id).update(**changes)
    if permanent:
        ContactMethod.objects.filter(pk=method_id, failing_since__isnull=True).update(failing_since=now)
    return bool(
        ContactMethod.objects.filter(
            pk=method_id,
            suspended_at__isnull=True,
            consecutive_failures__gte=settings.NOTIFY_SUSPEND_AFTER_FAILURES,
        ).update(suspended_at=now)
    )


def owners_of_phone_addresses(addresses) -> dict[str, object]:
    """``method:<id>`` addresses → (user, display) for the admins' failing-address list."""
    ids = []
    for address in addresses:
        if address.startswith("method:") and address[7:].isdigit():
            ids.append(int(address[7:]))
    return {m.address: m for m in ContactMethod.objects.filter(pk__in=ids).select_related("user")}
