"""System checks for the personal contact methods' encryption key."""

from django.conf import settings
from django.core import checks


@checks.register(checks.Tags.security)
def notify_encryption_keys(app_configs, **kwargs):
    from . import crypto

    keys = [k for k in settings.NOTIFY_ENCRYPTION_KEYS if k.strip()]
    if not keys:
        return [
            checks.Warning(
                "NOTIFY_ENCRYPTION_KEYS is not set: members cannot add phone or chat contact methods.",
                hint="Generate one with: python -c "
                '"from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"',
                id="itb.W101",
            )
        ]
    if not crypto.is_configured():
        return [checks.Error("NOTIFY_ENCRYPTION_KEYS holds a value that is not a Fernet key.", id="itb.E101")]
    if not settings.DEBUG and settings.NOTIFY_DEV_ENCRYPTION_KEY in keys:
        return [
            checks.Error(
                "NOTIFY_ENCRYPTION_KEYS uses the development key outside DEBUG: "
                "contact-method secrets would be readable.",
                id="itb.E102",
            )
        ]
    return []
