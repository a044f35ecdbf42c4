"""Seed the default escalation policies for clinics that existed before alerting."""

from django.db import migrations


def seed(apps, schema_editor):
    from alerts.policies import DEFAULT_POLICIES

    Clinic = apps.get_model("clinics", "Clinic")
    EscalationPolicy = apps.get_model("alerts", "EscalationPolicy")
    EscalationLevel = apps.get_model("alerts", "EscalationLevel")
    for clinic in Clinic.objects.all():
        for severity, (repeat_count, realert_minutes, levels) in DEFAULT_POLICIES.items():
            policy, created = EscalationPolicy.objects.get_or_create(
                clinic=clinic,
                severity=int(severity),
                defaults={"repeat_count": repeat_count, "realert_minutes": realert_minutes},
            )
            if not created:
                continue
            for position, fields in enumerate(levels):
                EscalationLevel.objects.create(
                    policy=policy,
                    position=position,
                    roles=[str(r) for r in fields.get("roles", [])],
                    on_call=bool(fields.get("on_call")),  # a list of rota roles since alerts 0003
                    assigned_nurse=fields.get("assigned_nurse", False),
                    channels=[str(c) for c in fields["channels"]],
                    wait_minutes=fields["wait_minutes"],
                )


class Migration(migrations.Migration):
    dependencies = [("alerts", "0001_initial"), ("clinics", "0001_initial")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
