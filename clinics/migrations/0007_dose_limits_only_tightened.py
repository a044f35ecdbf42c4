"""A clinic's dose settings may be lowered, never raised (issue 9, item 5): the hard dose limit at
most 3000 mcg/day, the high-dose threshold at most 1000 mcg/day (CLINICAL.md's defaults) and never
above the hard limit. Check constraints hold it whatever writes the row.

A clinic already above these figures is brought down to them first (a tightening: a dose above the
new limit is refused from now on, nothing recorded changes), with a history row saying so, written
as the system user when it exists.
"""

import django.core.validators
from decimal import Decimal
from django.conf import settings
from django.db import migrations, models
from django.utils import timezone

HARD_LIMIT = Decimal("3000")
THRESHOLD = Decimal("1000")
REASON = "dose limits brought within 3000/1000 mcg/day"  # history_change_reason holds 100 characters


def bring_limits_down(apps, schema_editor):
    Clinic = apps.get_model("clinics", "Clinic")
    HistoricalClinic = apps.get_model("clinics", "HistoricalClinic")
    User = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    system_user = User.objects.filter(username=settings.SYSTEM_USERNAME).first()
    now = timezone.now()
    for clinic in Clinic.objects.order_by("pk"):
        limit = min(clinic.max_daily_dose_mcg_per_day, HARD_LIMIT)
        threshold = min(clinic.high_dose_threshold_mcg_per_day, THRESHOLD, limit)
        if (limit, threshold) == (clinic.max_daily_dose_mcg_per_day, clinic.high_dose_threshold_mcg_per_day):
            continue
        clinic.max_daily_dose_mcg_per_day = limit
        clinic.high_dose_threshold_mcg_per_day = threshold
        clinic.save(update_fields=["max_daily_dose_mcg_per_day", "high_dose_threshold_mcg_per_day"])
        values = {field.attname: getattr(clinic, field.attname) for field in Clinic._meta.concrete_fields}
        HistoricalClinic.objects.create(
            **values,
            history_date=now,
            history_type="~",
            history_change_reason=REASON,
            history_user=system_user,
        )


class Migration(migrations.Migration):
    dependencies = [
        ("clinics", "0006_restart_order_after_empty"),
    ]

    operations = [
        migrations.AlterField(
            model_name="clinic",
            name="high_dose_threshold_mcg_per_day",
            field=models.DecimalField(
                decimal_places=2,
                default=Decimal("1000.00"),
                help_text="A daily dose above this (mcg/day) needs an explicit confirmation (at most 1000, and not above the hard limit).",
                max_digits=8,
                validators=[
                    django.core.validators.MinValueValidator(Decimal("0")),
                    django.core.validators.MaxValueValidator(Decimal("1000")),
                ],
            ),
        ),
        migrations.AlterField(
            model_name="clinic",
            name="max_daily_dose_mcg_per_day",
            field=models.DecimalField(
                decimal_places=2,
                default=Decimal("3000.00"),
                help_text="Hard limit: daily dose plus bolus allowance above this is refused (mcg/day; it may be lowered, never raised above 3000).",
                max_digits=8,
                validators=[
                    django.core.validators.MinValueValidator(Decimal("0")),
                    django.core.validators.MaxValueValidator(Decimal("3000")),
                ],
            ),
        ),
        migrations.AlterField(
            model_name="historicalclinic",
            name="high_dose_threshold_mcg_per_day",
            field=models.DecimalField(
                decimal_places=2,
                default=Decimal("1000.00"),
                help_text="A daily dose above this (mcg/day) needs an explicit confirmation (at most 1000, and not above the hard limit).",
                max_digits=8,
                validators=[
                    django.core.validators.MinValueValidator(Decimal("0")),
                    django.core.validators.MaxValueValidator(Decimal("1000")),
                ],
            ),
        ),
        migrations.AlterField(
            model_name="historicalclinic",
            name="max_daily_dose_mcg_per_day",
            field=models.DecimalField(
                decimal_places=2,
                default=Decimal("3000.00"),
                help_text="Hard limit: daily dose plus bolus allowance above this is refused (mcg/day; it may be lowered, never raised above 3000).",
                max_digits=8,
                validators=[
                    django.core.validators.MinValueValidator(Decimal("0")),
                    django.core.validators.MaxValueValidator(Decimal("3000")),
                ],
            ),
        ),
        migrations.RunPython(bring_limits_down, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="clinic",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("max_daily_dose_mcg_per_day__gte", 0), ("max_daily_dose_mcg_per_day__lte", Decimal("3000"))
                ),
                name="clinic_hard_dose_limit_at_most_3000",
            ),
        ),
        migrations.AddConstraint(
            model_name="clinic",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("high_dose_threshold_mcg_per_day__gte", 0),
                    ("high_dose_threshold_mcg_per_day__lte", Decimal("1000")),
                ),
                name="clinic_high_dose_threshold_at_most_1000",
            ),
        ),
        migrations.AddConstraint(
            model_name="clinic",
            constraint=models.CheckConstraint(
                condition=models.Q(("high_dose_threshold_mcg_per_day__lte", models.F("max_daily_dose_mcg_per_day"))),
                name="clinic_high_dose_threshold_within_hard_limit",
            ),
        ),
    ]
