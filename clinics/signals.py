"""Guards that hold whatever code path is used: users are never deleted; history is append-only."""

from django.contrib.auth import get_user_model
from django.db.models.signals import post_migrate, pre_delete
from django.dispatch import Signal, receiver


@receiver(pre_delete, sender=get_user_model())
def refuse_user_deletion(sender, instance, **kwargs):
    # History rows and clinical records point at users: deactivate instead.
    raise PermissionError("Users are deactivated, never deleted (history points at them).")


HISTORY_GUARD_FUNCTION = """
CREATE OR REPLACE FUNCTION itb_refuse_history_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'history rows are append-only (% on %)', TG_OP, TG_TABLE_NAME;
END;
$$ LANGUAGE plpgsql;
"""


def history_tables() -> list[str]:
    from django.apps import apps

    return sorted(
        model._meta.db_table
        for model in apps.get_models()
        if model.__name__.startswith("Historical") and model._meta.app_label in {"clinics", "patients", "alerts"}
    )


def install_history_guards(using="default") -> list[str]:
    """On PostgreSQL, a trigger refuses UPDATE and DELETE on every history table."""
    from django.db import connections

    conn = connections[using]
    if conn.vendor != "postgresql":
        return []
    tables = history_tables()
    with conn.cursor() as cursor:
        cursor.execute(HISTORY_GUARD_FUNCTION)
        for table in tables:
            cursor.execute(
                f'CREATE OR REPLACE TRIGGER itb_history_append_only BEFORE UPDATE OR DELETE ON "{table}" '
                "FOR EACH ROW EXECUTE FUNCTION itb_refuse_history_change()"
            )
    return tables


@receiver(post_migrate)
def guard_history_after_migrate(sender, using="default", **kwargs):
    # Runs after every migrate (tests included), so a new history table is guarded at once.
    if sender.name == "clinics":
        install_history_guards(using)


# Sent (inside the writing transaction) when who is on call may have changed: a rotation or an
# override saved or removed, a member deactivated. alerts listens (rota gap alerts); clinics never
# imports alerts.
rota_changed = Signal()  # kwargs: clinic, now
