"""Shared set-up for the API tests (test_api_*.py): clients, URLs, a refill body, pumps.

No tests here: the module holds what every API test file imports.
"""

from contextlib import contextmanager
from datetime import datetime
from zoneinfo import ZoneInfo

import time_machine
from django.urls import reverse
from rest_framework.test import APIClient

from .factories import PatientFactory, PumpFactory, first_fill_order, pump_model

PHX = ZoneInfo("America/Phoenix")
FIRST_FILL_AT = "2026-01-05T09:00:00-07:00"


def url(name, *args):
    return reverse(name, args=args)


def client_for(user) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


@contextmanager
def clock(text):
    """Freeze the clock at an ISO 8601 time (with its offset)."""
    with time_machine.travel(datetime.fromisoformat(text), tick=False):
        yield


def first_fill(**overrides):
    """The CLINICAL.md worked example's fill: 40 mL of 2000 mcg/mL at 600 mcg/day."""
    body = {
        "performed_at": FIRST_FILL_AT,
        "aspirated_ml": 0,
        "volume_added_ml": 40,
        "concentration_mcg_per_ml": 2000,
        "daily_dose_mcg": 600,
    }
    body.update(overrides)
    return {key: value for key, value in body.items() if value is not None}


def post_refill(user, pump, body, now="2026-01-05T09:30:00-07:00"):
    # A nurse's first fill names the ordering physician (a first fill is a dose change); the
    # tests of that rule name one (or not) themselves through the service or the body.
    order = first_fill_order(pump, user, {}) if "ordered_by" not in body else {}
    if "ordered_by" in order:
        body = {**body, "ordered_by": order["ordered_by"].pk}
    with clock(now):
        return client_for(user).post(url("api-pump-refills", pump.pk), body, format="json")


def make_pump(clinic):
    return PumpFactory(patient=PatientFactory(clinic=clinic), pump_model=pump_model("SynchroMed II 40 mL"))


def fill_worked_example(pump, nurse):
    """Fill ``pump`` as in the worked example, on 2026-01-05 09:00 (Phoenix)."""
    response = post_refill(nurse, pump, first_fill())
    assert response.status_code == 201, response.json()
    return pump
