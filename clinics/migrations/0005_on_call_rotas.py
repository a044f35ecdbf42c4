"""On-call rotas. Each clinic gets an on-call nurse and an on-call physician rotation; the members
who had the on-call flag become the members of the rotation of their role (one rotation per role,
in username order, handing over weekly on Mondays at 08:00, the first of them this week), and the flag
goes. A clinic that flagged nobody gets the two rotations empty: nobody on call, as before.
"""

import datetime
import django.core.validators
import django.db.models.deletion
import simple_history.models
from django.conf import settings
from django.db import migrations, models


ROTA_NAMES = {"nurse": "On-call nurse", "physician": "On-call physician", "clinic_admin": "On-call administrator"}


def flags_to_rotations(apps, schema_editor):
    import zoneinfo

    from django.utils import timezone

    Clinic = apps.get_model("clinics", "Clinic")
    Membership = apps.get_model("clinics", "Membership")
    Rotation = apps.get_model("clinics", "Rotation")
    for clinic in Clinic.objects.all():
        today = timezone.now().astimezone(zoneinfo.ZoneInfo(clinic.timezone)).date()
        monday = today - datetime.timedelta(days=today.weekday())
        flagged = {}
        for membership in Membership.objects.filter(clinic=clinic, on_call=True).order_by("user__username"):
            flagged.setdefault(membership.role, []).append(membership.pk)
        for role in ["nurse", "physician", *sorted(set(flagged) - {"nurse", "physician"})]:
            members = flagged.get(role, [])
            # One whole turn of the rota before this week: the first member has this week, and
            # someone is on call even before this Monday's 08:00 hand-over.
            Rotation.objects.create(
                clinic=clinic,
                name=ROTA_NAMES.get(role, f"On-call {role}"),
                role=role,
                member_ids=members,
                handover_weekday=0,
                handover_time=datetime.time(8, 0),
                length_days=7,
                starts_on=monday - datetime.timedelta(weeks=max(len(members), 1)),
            )


class Migration(migrations.Migration):
    dependencies = [
        ("clinics", "0004_clinic_calendar"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="HistoricalRotation",
            fields=[
                ("id", models.BigIntegerField(auto_created=True, blank=True, db_index=True, verbose_name="ID")),
                (
                    "name",
                    models.CharField(help_text="What escalation levels call it, e.g. “On-call nurse”.", max_length=80),
                ),
                (
                    "role",
                    models.CharField(
                        choices=[
                            ("nurse", "Nurse"),
                            ("physician", "Physician"),
                            ("clinic_admin", "Clinic administrator"),
                        ],
                        help_text="Whose rota this is.",
                        max_length=20,
                    ),
                ),
                ("member_ids", models.JSONField(blank=True, default=list, help_text="Membership ids, in turn order.")),
                (
                    "handover_weekday",
                    models.PositiveSmallIntegerField(
                        choices=[
                            (0, "Monday"),
                            (1, "Tuesday"),
                            (2, "Wednesday"),
                            (3, "Thursday"),
                            (4, "Friday"),
                            (5, "Saturday"),
                            (6, "Sunday"),
                        ],
                        default=0,
                    ),
                ),
                ("handover_time", models.TimeField(default=datetime.time(8, 0))),
                (
                    "length_days",
                    models.PositiveSmallIntegerField(
                        default=7,
                        help_text="Days each member is on call.",
                        validators=[
                            django.core.validators.MinValueValidator(1),
                            django.core.validators.MaxValueValidator(90),
                        ],
                    ),
                ),
                ("starts_on", models.DateField(help_text="The first hand-over (a hand-over weekday).")),
                ("created_at", models.DateTimeField(blank=True, editable=False)),
                ("history_id", models.AutoField(primary_key=True, serialize=False)),
                ("history_date", models.DateTimeField(db_index=True)),
                ("history_change_reason", models.CharField(max_length=100, null=True)),
                (
                    "history_type",
                    models.CharField(choices=[("+", "Created"), ("~", "Changed"), ("-", "Deleted")], max_length=1),
                ),
                (
                    "clinic",
                    models.ForeignKey(
                        blank=True,
                        db_constraint=False,
                        null=True,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="clinics.clinic",
                    ),
                ),
                (
                    "history_user",
                    models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "verbose_name": "historical rotation",
                "verbose_name_plural": "historical rotations",
                "ordering": ("-history_date", "-history_id"),
                "get_latest_by": ("history_date", "history_id"),
            },
            bases=(simple_history.models.HistoricalChanges, models.Model),
        ),
        migrations.CreateModel(
            name="Rotation",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "name",
                    models.CharField(help_text="What escalation levels call it, e.g. “On-call nurse”.", max_length=80),
                ),
                (
                    "role",
                    models.CharField(
                        choices=[
                            ("nurse", "Nurse"),
                            ("physician", "Physician"),
                            ("clinic_admin", "Clinic administrator"),
                        ],
                        help_text="Whose rota this is.",
                        max_length=20,
                    ),
                ),
                ("member_ids", models.JSONField(blank=True, default=list, help_text="Membership ids, in turn order.")),
                (
                    "handover_weekday",
                    models.PositiveSmallIntegerField(
                        choices=[
                            (0, "Monday"),
                            (1, "Tuesday"),
                            (2, "Wednesday"),
                            (3, "Thursday"),
                            (4, "Friday"),
                            (5, "Saturday"),
                            (6, "Sunday"),
                        ],
                        default=0,
                    ),
                ),
                ("handover_time", models.TimeField(default=datetime.time(8, 0))),
                (
                    "length_days",
                    models.PositiveSmallIntegerField(
                        default=7,
                        help_text="Days each member is on call.",
                        validators=[
                            django.core.validators.MinValueValidator(1),
                            django.core.validators.MaxValueValidator(90),
                        ],
                    ),
                ),
                ("starts_on", models.DateField(help_text="The first hand-over (a hand-over weekday).")),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "clinic",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT, related_name="rotations", to="clinics.clinic"
                    ),
                ),
            ],
            options={
                "ordering": ["clinic", "role", "name"],
            },
        ),
        migrations.CreateModel(
            name="RotaOverride",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("starts_at", models.DateTimeField()),
                ("ends_at", models.DateTimeField()),
                ("reason", models.CharField(blank=True, max_length=200)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "membership",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="rota_overrides",
                        to="clinics.membership",
                    ),
                ),
                (
                    "rotation",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT, related_name="overrides", to="clinics.rotation"
                    ),
                ),
            ],
            options={
                "ordering": ["rotation", "starts_at", "id"],
            },
        ),
        migrations.CreateModel(
            name="HistoricalRotaOverride",
            fields=[
                ("id", models.BigIntegerField(auto_created=True, blank=True, db_index=True, verbose_name="ID")),
                ("starts_at", models.DateTimeField()),
                ("ends_at", models.DateTimeField()),
                ("reason", models.CharField(blank=True, max_length=200)),
                ("created_at", models.DateTimeField(blank=True, editable=False)),
                ("history_id", models.AutoField(primary_key=True, serialize=False)),
                ("history_date", models.DateTimeField(db_index=True)),
                ("history_change_reason", models.CharField(max_length=100, null=True)),
                (
                    "history_type",
                    models.CharField(choices=[("+", "Created"), ("~", "Changed"), ("-", "Deleted")], max_length=1),
                ),
                (
                    "history_user",
                    models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "membership",
                    models.ForeignKey(
                        blank=True,
                        db_constraint=False,
                        null=True,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="clinics.membership",
                    ),
                ),
                (
                    "rotation",
                    models.ForeignKey(
                        blank=True,
                        db_constraint=False,
                        null=True,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="clinics.rotation",
                    ),
                ),
            ],
            options={
                "verbose_name": "historical rota override",
                "verbose_name_plural": "historical rota overrides",
                "ordering": ("-history_date", "-history_id"),
                "get_latest_by": ("history_date", "history_id"),
            },
            bases=(simple_history.models.HistoricalChanges, models.Model),
        ),
        migrations.AddConstraint(
            model_name="rotation",
            constraint=models.UniqueConstraint(fields=("clinic", "name"), name="rotation_name_unique_per_clinic"),
        ),
        migrations.AddConstraint(
            model_name="rotation",
            constraint=models.CheckConstraint(
                condition=models.Q(("length_days__gte", 1)), name="rotation_length_positive"
            ),
        ),
        migrations.AddIndex(
            model_name="rotaoverride",
            index=models.Index(fields=["rotation", "ends_at"], name="clinics_rot_rotatio_e6f972_idx"),
        ),
        migrations.AddConstraint(
            model_name="rotaoverride",
            constraint=models.CheckConstraint(
                condition=models.Q(("ends_at__gt", models.F("starts_at"))), name="override_ends_after_start"
            ),
        ),
        migrations.RunPython(flags_to_rotations, migrations.RunPython.noop),
        migrations.RemoveField(
            model_name="historicalmembership",
            name="on_call",
        ),
        migrations.RemoveField(
            model_name="membership",
            name="on_call",
        ),
    ]
