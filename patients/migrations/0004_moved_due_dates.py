"""Closed days move refill due dates (CLINICAL.md "Closed days"). Every clinic now opens Monday to
Friday by default (clinics 0003), so every stored projection's due date moves to the last open day
on or before it, and its "due soon" and "overdue" instants follow. The scan reads these stored rows:
none may keep an unmoved date.

Set-based: the rows of one clinic that share an unmoved due date share the moved one, so the
queries are one per clinic plus one UPDATE per distinct due date that moves — never one per pump.
The rule is written out here (not imported) so that this migration keeps doing what it did when it
was written. Holidays and closures cannot exist yet: the weekdays are the whole calendar.
"""

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db import migrations, models
from django.db.models import F


def _last_open_day(day, open_weekdays):
    for _ in range(7):
        if day.weekday() in open_weekdays:
            return day
        day -= timedelta(days=1)
    return day  # a clinic open on no weekday: left unmoved (the clinics form refuses that)


def _instants(due_on, zone, reminder_days):
    overdue_from = datetime.combine(due_on + timedelta(days=1), time.min, tzinfo=zone)
    due_soon_from = datetime.combine(due_on - timedelta(days=reminder_days), time.min, tzinfo=zone)
    return overdue_from, due_soon_from


def move_due_dates(apps, schema_editor):
    Clinic = apps.get_model("clinics", "Clinic")
    PumpProjection = apps.get_model("patients", "PumpProjection")
    PumpProjection.objects.update(unmoved_refill_due_on=F("refill_due_on"))
    for clinic in Clinic.objects.order_by("pk"):
        zone = ZoneInfo(clinic.timezone)
        open_weekdays = set(clinic.opening_weekdays)
        rows = PumpProjection.objects.filter(pump__patient__clinic_id=clinic.pk)
        for due_on in rows.order_by().values_list("unmoved_refill_due_on", flat=True).distinct():
            moved = _last_open_day(due_on, open_weekdays)
            if moved != due_on:
                overdue_from, due_soon_from = _instants(moved, zone, clinic.reminder_days)
                rows.filter(unmoved_refill_due_on=due_on).update(
                    refill_due_on=moved, overdue_from=overdue_from, due_soon_from=due_soon_from
                )


def restore_unmoved_dates(apps, schema_editor):
    Clinic = apps.get_model("clinics", "Clinic")
    PumpProjection = apps.get_model("patients", "PumpProjection")
    for clinic in Clinic.objects.order_by("pk"):
        zone = ZoneInfo(clinic.timezone)
        rows = PumpProjection.objects.filter(pump__patient__clinic_id=clinic.pk).exclude(
            unmoved_refill_due_on=F("refill_due_on")
        )
        for due_on in rows.order_by().values_list("unmoved_refill_due_on", flat=True).distinct():
            overdue_from, due_soon_from = _instants(due_on, zone, clinic.reminder_days)
            rows.filter(unmoved_refill_due_on=due_on).update(
                refill_due_on=due_on, overdue_from=overdue_from, due_soon_from=due_soon_from
            )


class Migration(migrations.Migration):
    dependencies = [
        ("clinics", "0004_clinic_calendar"),
        ("patients", "0003_scan_indexes"),
    ]

    operations = [
        migrations.AddField(
            model_name="pumpprojection",
            name="unmoved_refill_due_on",
            field=models.DateField(null=True),
        ),
        migrations.RunPython(move_due_dates, restore_unmoved_dates),
    ]
