"""Re-encrypt every contact-method URL under the first of NOTIFY_ENCRYPTION_KEYS.

Rotation: put the new key first in NOTIFY_ENCRYPTION_KEYS (keeping the old one after it), restart,
run this command, then drop the old key. Nothing is printed about the URLs themselves.
"""

from django.core.management.base import BaseCommand
from django.db import transaction

from alerts import crypto
from alerts.models import ContactMethod


class Command(BaseCommand):
    help = "Re-encrypt contact-method URLs under the newest NOTIFY_ENCRYPTION_KEYS key."

    def handle(self, *args, **options):
        count = 0
        with transaction.atomic():
            for method in ContactMethod.objects.select_for_update().only("pk", "url_encrypted"):
                rotated = crypto.rotate(method.url_encrypted)
                if rotated != method.url_encrypted:
                    ContactMethod.objects.filter(pk=method.pk).update(url_encrypted=rotated)
                count += 1
        self.stdout.write(f"{count} contact method{'s' if count != 1 else ''} re-encrypted under the newest key.")
