"""Staff account writes: two-factor enrolment and reset, recovery codes, temporary passwords.

One function per write, one transaction each; every event the issue names lands in the
append-only access log (``clinics.access.log_access``), with the clinic left empty for a
user's own events (sign-in, enrolment) and set when a clinic admin acts on a member.
"""

from __future__ import annotations

import secrets
from base64 import b32encode

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django_otp import devices_for_user
from django_otp.plugins.otp_totp.models import TOTPDevice

from clinics.access import log_access
from clinics.models import AccessLog, Membership, Role

from . import sessions
from .models import RecoveryCode, RecoveryCodeDevice, TemporaryPassword

RECOVERY_CODE_COUNT = 10
NO_MATCH = "That code did not match. Check the time on your phone and try the newest code."
Action = AccessLog.Action


# --- who must use a second factor ------------------------------------------------------------


def two_factor_required(user) -> bool:
    """Superusers and clinic admins (``MFA_REQUIRED_FOR_ADMINS``), and every member of a clinic
    whose ``two_factor_required`` setting is on."""
    if not user.is_authenticated:
        return False
    if settings.MFA_REQUIRED_FOR_ADMINS and user.is_superuser:
        return True
    rule = Q(clinic__two_factor_required=True)
    if settings.MFA_REQUIRED_FOR_ADMINS:
        rule |= Q(role=Role.CLINIC_ADMIN)
    return Membership.objects.active().filter(rule, user=user).exists()


def has_two_factor(user) -> bool:
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def authenticator(user) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=True).first()


def recovery_device(user) -> RecoveryCodeDevice | None:
    return RecoveryCodeDevice.objects.filter(user=user, confirmed=True).first()


# --- enrolment -------------------------------------------------------------------------------


@transaction.atomic
def start_enrolment(user) -> TOTPDevice:
    """The user's unconfirmed authenticator (one at a time: reloading the page keeps its QR code)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)
    return device


@transaction.atomic
def confirm_enrolment(user, device: TOTPDevice, code: str) -> list[str]:
    """Confirm the new authenticator with a code it shows; it replaces any earlier one.
    Returns ten new recovery codes (their hashes are stored; the codes are shown once)."""
    device = TOTPDevice.objects.select_for_update().get(pk=device.pk, user=user, confirmed=False)
    if not device.verify_token(_digits(code)):
        raise ValidationError({"code": NO_MATCH})
    TOTPDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    codes = issue_recovery_codes(user, log=False)
    log_access(user, Action.ENROLLED, detail="authenticator app and 10 recovery codes")
    return codes


@transaction.atomic
def issue_recovery_codes(user, *, log=True) -> list[str]:
    """Ten new single-use recovery codes; earlier ones stop working. Only hashes are stored."""
    RecoveryCodeDevice.objects.filter(user=user).delete()
    device = RecoveryCodeDevice.objects.create(user=user, name="Recovery codes", confirmed=True)
    codes = [_new_code() for _ in range(RECOVERY_CODE_COUNT)]
    RecoveryCode.objects.bulk_create(RecoveryCode(device=device, code_hash=_hash(code)) for code in codes)
    if log:
        log_access(user, Action.ENROLLED, detail="new recovery codes (the earlier ones no longer work)")
    return codes


def _new_code() -> str:
    raw = b32encode(secrets.token_bytes(10)).decode().lower()  # 80 bits, 16 characters
    return "-".join(raw[i : i + 4] for i in range(0, 16, 4))


def _hash(code: str) -> str:
    from .models import hash_code

    return hash_code(code)


def _digits(code: str) -> str:
    return "".join(ch for ch in code if ch.isdigit())


@transaction.atomic
def remove_two_factor(user, *, actor, clinic=None, reason: str) -> int:
    """Delete the user's authenticator and recovery codes (they enrol again at next sign-in if required)."""
    removed = 0
    for device in list(devices_for_user(user, confirmed=None)):
        device.delete()
        removed += 1
    log_access(actor, Action.TWO_FACTOR_RESET, user, clinic=clinic, detail=reason)
    return removed


# --- second step of a sign-in ----------------------------------------------------------------


def verify_second_factor(user, code: str):
    """The device that accepts ``code`` (a 6-digit authenticator code or a recovery code), or None.

    Each device is checked on its own, in a transaction (django-otp's throttling and the TOTP
    replay guard need the row locked), and only the kind of device the code looks like."""
    from django_otp import verify_token

    typed = code.strip()
    digits = _digits(typed)
    if len(digits) == 6 and len(typed.replace(" ", "")) == 6:
        device = authenticator(user)
        return verify_token(user, device.persistent_id, digits) if device else None
    device = recovery_device(user)
    return verify_token(user, device.persistent_id, typed) if device else None


def describe_factor(device) -> str:
    if isinstance(device, RecoveryCodeDevice):
        return "recovery code"
    if isinstance(device, TOTPDevice):
        return "authenticator code"
    return ""


# --- clinic admin: reset a member's second factor ---------------------------------------------


@transaction.atomic
def reset_member_two_factor(*, actor, membership: Membership) -> None:
    """A clinic admin clears a member's authenticator and recovery codes (a lost phone). The
    member is told by email; their next sign-in asks them to enrol again if it is required."""
    member = membership.user
    if member.pk == actor.pk:
        raise ValidationError("Reset your own two-factor sign-in from your Security page.")
    if member.is_superuser and not actor.is_superuser:
        raise ValidationError("Only a superuser may reset a superuser's two-factor sign-in.")
    if not list(devices_for_user(member, confirmed=None)):
        raise ValidationError(f"{member.username} has no two-factor sign-in to reset.")
    remove_two_factor(member, actor=actor, clinic=membership.clinic, reason=f"of {member.username} by a clinic admin")
    sessions.end_all(member, reason="two-factor reset by a clinic admin")
    if member.email:
        context = {"user": member, "clinic": membership.clinic, "site_url": settings.SITE_URL}
        transaction.on_commit(
            lambda: send_mail(
                "ITB Tracker: your two-factor sign-in was reset",
                render_to_string("accounts/email/two_factor_reset.txt", context),
                None,
                [member.email],
            )
        )


# --- passwords --------------------------------------------------------------------------------


@transaction.atomic
def mark_password_temporary(user, *, actor) -> None:
    """The password was typed by ``actor`` (a clinic admin): the next web sign-in must change it."""
    TemporaryPassword.objects.update_or_create(user=user, defaults={"set_by": actor})


def password_is_temporary(user) -> bool:
    return TemporaryPassword.objects.filter(user=user).exists()


@transaction.atomic
def password_changed(user, *, how: str, keep_session_key: str | None = None, end_tokens: bool = False) -> None:
    """After a new password: the temporary flag goes, other sessions end (and API tokens, after a
    reset by email), and the access log says so."""
    TemporaryPassword.objects.filter(user=user).delete()
    ended = sessions.end_all(user, reason=f"password {how}", keep_session_key=keep_session_key, tokens=end_tokens)
    action = Action.PASSWORD_RESET if how == "reset by email" else Action.PASSWORD_CHANGED
    log_access(user, action, detail=f"{how}; {ended} other session(s) or token(s) ended")
