"""The demo clinic: fictional, idempotent, refused outside DEBUG."""

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone

from clinics.models import Clinic, Membership
from patients.models import Patient, Pump, PumpProjection, RefillVisit


@pytest.mark.django_db
@override_settings(DEBUG=False)
def test_seed_demo_refuses_when_debug_is_off():
    with pytest.raises(CommandError, match="DEBUG"):
        call_command("seed_demo")
    assert not Clinic.objects.exists()


@pytest.mark.django_db
@override_settings(DEBUG=True)
def test_seed_demo_is_idempotent_and_puts_pumps_in_varied_states(capsys):
    call_command("seed_demo", pumps=16)
    first = capsys.readouterr().out
    call_command("seed_demo", pumps=16)
    second = capsys.readouterr().out
    clinic = Clinic.objects.get(name="Saguaro Pump Clinic (demo)")
    assert clinic.timezone == "America/Phoenix"
    assert Patient.objects.filter(clinic=clinic).count() == 16
    assert Membership.objects.filter(clinic=clinic).count() == 4
    assert "demo-nurse" in first and "demo-nurse" in second
    now = timezone.now()
    statuses = {p.status_at(now) for p in PumpProjection.objects.all()}
    assert {"ok", "due_soon", "overdue", "critical", "stopped"} <= statuses
    assert all(mrn.startswith("DEMO-") for mrn in Patient.objects.values_list("mrn", flat=True))
    # Through the services: every risk flag, one transfer, one explanted and replaced pump.
    patients = Patient.objects.filter(clinic=clinic)
    for flag in ("sci_at_or_above_t6", "communication_difficulty", "prior_withdrawal"):
        assert patients.filter(**{flag: True}).exists(), flag
    assert patients.filter(status="transferred").count() == 1
    replaced = Pump.objects.get(replaced_by__isnull=False)
    assert (replaced.status, replaced.explant_reason) == ("explanted", "replacement")
    assert replaced.replaced_by.refills.get().expected_residual_ml is None
    assert not RefillVisit.objects.filter(program__ordered_by__isnull=True).exists()
