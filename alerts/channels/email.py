"""Email through Django's backend (SMTP via EMAIL_URL; TLS in production)."""

import smtplib

from django.core.mail import EmailMessage, get_connection

from . import Permanent, Transient, message_fields


def render(alert) -> tuple[str, str]:
    f = message_fields(alert)
    subject = f"[ITB Tracker] {f['severity'].upper()}: {f['kind_label']} — {f['reference']}"
    body = (
        f"Alert {f['reference']}\n"
        f"Kind: {f['kind_label']}\n"
        f"Urgency: {f['severity']}\n"
        f"Raised: {f['raised_at_local']}\n\n"
        f"Open the alert (log in to see which patient and to acknowledge it):\n{f['url']}\n\n"
        "This message carries no patient details by design. Opening the link does not acknowledge the alert.\n"
    )
    return subject, body


def send(notification) -> None:
    subject, body = render(notification.alert)
    send_text(subject, body, notification.address)


def send_text(subject: str, body: str, address: str) -> None:
    """Send one plain-text message; a refusal raises ``Transient`` or ``Permanent`` (also used by
    the monthly report digest, which carries no patient identifier either)."""
    try:
        connection = get_connection(timeout=20)
        EmailMessage(subject, body, to=[address], connection=connection).send(fail_silently=False)
    except smtplib.SMTPRecipientsRefused as exc:
        # A 4xx at RCPT TO (greylisting, a full mailbox, a busy server) is worth retrying; 5xx is final.
        codes = [code for code, _message in exc.recipients.values()]
        if codes and all(400 <= code < 500 for code in codes):
            raise Transient(f"recipient deferred: {exc.recipients}") from exc
        raise Permanent(f"recipient refused: {exc.recipients}") from exc
    except smtplib.SMTPResponseException as exc:
        if 500 <= exc.smtp_code < 600:
            raise Permanent(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}") from exc
        raise Transient(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}") from exc
    except (TimeoutError, smtplib.SMTPException, OSError) as exc:
        raise Transient(f"{type(exc).__name__}: {exc}") from exc
