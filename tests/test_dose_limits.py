"""A clinic's dose limits may be lowered, never raised (issue 9, item 5; DESIGN.md "Who may do
what": a clinic setting may only tighten a safety limit). The hard limit is at most 3000 mcg/day,
the high-dose threshold at most 1000 mcg/day (CLINICAL.md's default) and never above the hard
limit: refused by the settings form beside the field, by the service, by the Django admin and by
the database itself."""

from datetime import datetime
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
from django.apps import apps
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse

from clinics.models import Clinic
from patients import services

from .factories import clinic_physician, filled_pump
from .test_clinic_admin import settings_form

PHX = ZoneInfo("America/Phoenix")
REPROGRAMMED = datetime(2026, 1, 20, 10, tzinfo=PHX)


def post_settings(client, clinic, **changes):
    return client.post(reverse("clinic-settings", args=[clinic.pk]), settings_form(clinic, **changes))


def limits(clinic):
    clinic.refresh_from_db()
    return clinic.max_daily_dose_mcg_per_day, clinic.high_dose_threshold_mcg_per_day


# --- the settings page --------------------------------------------------------------------------


@pytest.mark.django_db
def test_clinic_admin_typing_999999_as_the_hard_limit_is_refused_beside_the_field(client, clinic, clinic_admin):
    client.force_login(clinic_admin)
    response = post_settings(client, clinic, max_daily_dose_mcg_per_day="999999")
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert list(errors) == ["max_daily_dose_mcg_per_day"]
    assert "3000" in errors["max_daily_dose_mcg_per_day"][0]
    assert limits(clinic) == (D("3000"), D("1000"))


@pytest.mark.django_db
def test_high_dose_threshold_above_clinicals_1000_is_refused_beside_the_field(client, clinic, clinic_admin):
    client.force_login(clinic_admin)
    response = post_settings(client, clinic, high_dose_threshold_mcg_per_day="1200")
    assert list(response.context["form"].errors) == ["high_dose_threshold_mcg_per_day"]
    assert limits(clinic) == (D("3000"), D("1000"))


@pytest.mark.django_db
def test_hard_limit_lowered_below_the_threshold_is_refused_beside_the_threshold(client, clinic, clinic_admin):
    client.force_login(clinic_admin)
    response = post_settings(client, clinic, max_daily_dose_mcg_per_day="800")
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert "above the hard limit (800 mcg/day)" in errors["high_dose_threshold_mcg_per_day"][0]
    assert limits(clinic) == (D("3000"), D("1000"))


@pytest.mark.django_db
def test_a_clinic_lowers_both_limits_and_a_dose_above_its_own_limit_is_refused(client, clinic, clinic_admin, nurse):
    pump = filled_pump(clinic, nurse)
    client.force_login(clinic_admin)
    response = post_settings(client, clinic, max_daily_dose_mcg_per_day="1500", high_dose_threshold_mcg_per_day="800")
    assert response.status_code == 302
    assert limits(clinic) == (D("1500"), D("800"))
    with pytest.raises(services.Refusal) as refusal:
        services.change_program(
            pump=pump,
            actor=nurse,
            effective_at=REPROGRAMMED,
            daily_dose_mcg=D("1600"),
            ordered_by=clinic_physician(clinic),
            dose_change_confirmed=True,
            now=REPROGRAMMED,
        )
    assert "above the hard limit of 1500 mcg/day" in refusal.value.message_dict["daily_dose_mcg"][0]


# --- the service, the Django admin, the database ----------------------------------------------


@pytest.mark.django_db
def test_reviewers_reproduction_999999_then_9000_mcg_per_day_is_refused_at_both_steps(
    clinic, clinic_admin, nurse, physician
):
    """The finding: 999999 was saved as the hard limit, then 9000 mcg/day was programmed."""
    pump = filled_pump(clinic, nurse)
    with pytest.raises(services.Refusal) as refusal:
        services.update_clinic_settings(clinic=clinic, actor=clinic_admin, max_daily_dose_mcg_per_day=D("999999"))
    assert "max_daily_dose_mcg_per_day" in refusal.value.message_dict
    assert limits(clinic) == (D("3000"), D("1000"))
    with pytest.raises(services.Refusal) as refusal:
        services.change_program(
            pump=pump,
            actor=physician,
            effective_at=REPROGRAMMED,
            daily_dose_mcg=D("9000"),
            dose_change_confirmed=True,
            now=REPROGRAMMED,
        )
    assert "above the hard limit of 3000 mcg/day" in refusal.value.message_dict["daily_dose_mcg"][0]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "changes",
    [
        {"max_daily_dose_mcg_per_day": D("3000.01")},
        {"high_dose_threshold_mcg_per_day": D("1000.01")},
        {"max_daily_dose_mcg_per_day": D("900")},  # the 1000 threshold would sit above it
    ],
    ids=["hard-limit", "threshold", "threshold-above-limit"],
)
def test_update_clinic_settings_refuses_a_raised_limit(clinic, clinic_admin, changes):
    with pytest.raises(services.Refusal) as refusal:
        services.update_clinic_settings(clinic=clinic, actor=clinic_admin, **changes)
    field = "max_daily_dose_mcg_per_day" if "3000" in str(changes) else "high_dose_threshold_mcg_per_day"
    assert field in refusal.value.message_dict
    assert limits(clinic) == (D("3000"), D("1000"))


@pytest.mark.django_db
@pytest.mark.parametrize(
    "values",
    [
        {"max_daily_dose_mcg_per_day": D("999999")},
        {"high_dose_threshold_mcg_per_day": D("1500")},
        {"max_daily_dose_mcg_per_day": D("500"), "high_dose_threshold_mcg_per_day": D("600")},
        {"max_daily_dose_mcg_per_day": D("-1"), "high_dose_threshold_mcg_per_day": D("-2")},
    ],
    ids=["hard-limit", "threshold", "threshold-above-limit", "negative"],
)
def test_the_database_refuses_a_raised_limit_written_past_every_check(clinic, values):
    with pytest.raises(IntegrityError), transaction.atomic():
        Clinic.objects.filter(pk=clinic.pk).update(**values)
    assert limits(clinic) == (D("3000"), D("1000"))


@pytest.mark.django_db
def test_the_django_admin_refuses_a_hard_limit_above_3000(client, clinic, superuser):
    client.force_login(superuser)
    url = reverse("admin:clinics_clinic_change", args=[clinic.pk])
    form = client.get(url).context["adminform"].form
    data = {name: form[name].value() for name in form.fields}
    data = {k: ("" if v is None else v) for k, v in data.items() if not isinstance(v, list)}
    data["opening_weekdays"] = "[0, 1, 2, 3, 4]"
    data.update({"max_daily_dose_mcg_per_day": "999999", "memberships-TOTAL_FORMS": "0"})
    data.update({"memberships-INITIAL_FORMS": "0", "memberships-MIN_NUM_FORMS": "0"})
    data["memberships-MAX_NUM_FORMS"] = "1000"
    response = client.post(url, data)
    assert response.status_code == 200
    assert "max_daily_dose_mcg_per_day" in response.context["adminform"].form.errors
    assert limits(clinic) == (D("3000"), D("1000"))


@pytest.mark.django_db
def test_the_clinics_api_takes_no_dose_limit(client, superuser):
    """The API creates clinics with CLINICAL.md's limits: it does not accept them at all."""
    client.force_login(superuser)
    response = client.post(
        "/api/v1/clinics/",
        {"name": "Raised Limits Clinic", "timezone": "America/Phoenix", "max_daily_dose_mcg_per_day": 999999},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "max_daily_dose_mcg_per_day" in response.json()
    assert not Clinic.objects.filter(name="Raised Limits Clinic").exists()


# --- the upgrade ----------------------------------------------------------------------------------

BEFORE = [("clinics", "0006_restart_order_after_empty")]
AFTER = [("clinics", "0007_dose_limits_only_tightened")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor.loader.project_state(targets).apps


@pytest.mark.django_db(transaction=True, available_apps=[app.name for app in apps.get_app_configs()])
@pytest.mark.xdist_group("migrations")
def test_upgrade_brings_a_raised_limit_down_with_a_history_row():
    leaves = MigrationExecutor(connection).loader.graph.leaf_nodes()
    try:
        old = _migrate(BEFORE)
        OldClinic = old.get_model("clinics", "Clinic")
        raised = OldClinic.objects.create(
            name="Raised Clinic", max_daily_dose_mcg_per_day=D("999999"), high_dose_threshold_mcg_per_day=D("5000")
        )
        lowered = OldClinic.objects.create(
            name="Lowered Clinic", max_daily_dose_mcg_per_day=D("800"), high_dose_threshold_mcg_per_day=D("900")
        )
        untouched = OldClinic.objects.create(name="Careful Clinic", high_dose_threshold_mcg_per_day=D("600"))
        new = _migrate(AFTER)
        NewClinic = new.get_model("clinics", "Clinic")
        History = new.get_model("clinics", "HistoricalClinic")
        found = {
            c.name: (c.max_daily_dose_mcg_per_day, c.high_dose_threshold_mcg_per_day)
            for c in NewClinic.objects.filter(pk__in=[raised.pk, lowered.pk, untouched.pk])
        }
        assert found == {
            "Raised Clinic": (D("3000"), D("1000")),
            "Lowered Clinic": (D("800"), D("800")),
            "Careful Clinic": (D("3000"), D("600")),
        }
        rows = History.objects.filter(history_change_reason__startswith="dose limits brought")
        assert sorted(rows.values_list("name", flat=True)) == ["Lowered Clinic", "Raised Clinic"]
    finally:
        _migrate(leaves)
