"""Reviews of a refill link their refill, and their dedupe key names it (one review per refill).

Open residual-discrepancy and refill-after-empty reviews raised before this link the refill they
were most likely about: the pump's latest discrepant refill (or latest refill after an empty
reservoir) recorded by the time the alert was raised (later ones were swallowed by it). One that cannot be matched keeps its key
and no refill.
"""

from datetime import timedelta

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import Q

OPEN = ["triggered", "acknowledged"]
# The refill row is saved a moment after the service reads the clock it raises the alert with.
SAVE_SLACK = timedelta(minutes=1)


def link_open_reviews(apps, schema_editor):
    Alert = apps.get_model("alerts", "Alert")
    RefillVisit = apps.get_model("patients", "RefillVisit")
    matches = {
        "residual_discrepancy": Q(discrepancy=True),
        "refill_after_empty": Q(empty_since__isnull=False) | Q(nothing_aspirated=True),
    }
    reviews = Alert.objects.filter(status__in=OPEN, kind__in=list(matches), pump__isnull=False, refill__isnull=True)
    for alert in reviews.order_by("pk"):
        refill = (
            RefillVisit.objects.filter(
                matches[alert.kind], pump_id=alert.pump_id, created_at__lte=alert.raised_at + SAVE_SLACK
            )
            .order_by("-performed_at")
            .first()
        )
        if refill is None:
            continue
        alert.refill_id = refill.pk
        alert.dedupe_key = f"{alert.kind}:refill:{refill.pk}"
        alert.save(update_fields=["refill", "dedupe_key"])


class Migration(migrations.Migration):
    dependencies = [
        ("alerts", "0006_personal_contact_methods"),
        ("patients", "0008_caseload_import"),
    ]

    operations = [
        migrations.AddField(
            model_name="alert",
            name="refill",
            field=models.ForeignKey(
                blank=True,
                help_text="The refill a physician review is about.",
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="alerts",
                to="patients.refillvisit",
            ),
        ),
        # Reversed, the link goes with the column; the keys that name a refill stay (still unique).
        migrations.RunPython(link_open_reviews, migrations.RunPython.noop),
    ]
