"""Escalation levels name on-call rotas; alerts may be clinic-level (a rota gap has no pump).

A level that notified "the on-call members" names every rotation of its clinic (made from the
on-call flags by clinics 0005), so it reaches whoever is on call on each: the same people for a
clinic whose flags became one-member rotations, and nobody (then the clinic's admins) for a
clinic that flagged nobody, as before.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def levels_to_rotations(apps, schema_editor):
    EscalationLevel = apps.get_model("alerts", "EscalationLevel")
    Rotation = apps.get_model("clinics", "Rotation")
    rotations = {}
    for rotation in Rotation.objects.order_by("pk"):
        rotations.setdefault(rotation.clinic_id, []).append(rotation.pk)
    for level in EscalationLevel.objects.filter(on_call=True).select_related("policy"):
        level.on_call_rotation_ids = rotations.get(level.policy.clinic_id, [])
        level.save(update_fields=["on_call_rotation_ids"])


class Migration(migrations.Migration):
    dependencies = [
        ("alerts", "0003_alert_event_subject_at"),
        ("clinics", "0005_on_call_rotas"),
        ("patients", "0003_scan_indexes"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="alert",
            name="period_ends_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="alert",
            name="period_starts_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="alert",
            name="rotation",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="clinics.rotation",
            ),
        ),
        migrations.AddField(
            model_name="escalationlevel",
            name="on_call_rotation_ids",
            field=models.JSONField(
                blank=True, default=list, help_text="Notify whoever is on call on these rotas at the time of the step."
            ),
        ),
        migrations.AddField(
            model_name="historicalescalationlevel",
            name="on_call_rotation_ids",
            field=models.JSONField(
                blank=True, default=list, help_text="Notify whoever is on call on these rotas at the time of the step."
            ),
        ),
        migrations.AlterField(
            model_name="alert",
            name="kind",
            field=models.CharField(
                choices=[
                    ("refill_due", "Refill due"),
                    ("refill_overdue", "Refill overdue"),
                    ("reservoir_critical", "Reservoir critical"),
                    ("appointment_missed", "Appointment missed"),
                    ("pump_alarm", "Pump alarm or symptoms reported"),
                    ("residual_discrepancy", "Residual volume discrepancy"),
                    ("delivery_drift", "Delivery drift"),
                    ("replacement_due", "Pump replacement due"),
                    ("rota_gap", "Nobody on call (rota gap)"),
                ],
                max_length=30,
            ),
        ),
        migrations.AlterField(
            model_name="alert",
            name="pump",
            field=models.ForeignKey(
                blank=True,
                help_text="None: a clinic-level kind.",
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="alerts",
                to="patients.pump",
            ),
        ),
        migrations.AddConstraint(
            model_name="alert",
            constraint=models.CheckConstraint(
                condition=models.Q(("pump__isnull", False), ("kind__in", ["rota_gap"]), _connector="OR"),
                name="alert_has_pump_unless_clinic_level",
            ),
        ),
        migrations.RunPython(levels_to_rotations, migrations.RunPython.noop),
        migrations.RemoveField(
            model_name="escalationlevel",
            name="on_call",
        ),
        migrations.RemoveField(
            model_name="historicalescalationlevel",
            name="on_call",
        ),
    ]
