"""Every page and API answer that shows a patient writes the access log (DESIGN.md "AccessLog").

The walk reverses every URL pattern and every path of the API schema with one fixture patient
(and its pump, refill, appointment, alert …), GETs each as the nurse and as the clinic admin, and
for every answer whose body holds a fixture patient's name or MRN asserts that this request wrote an
access-log row, by that user, in the patient's clinic — so a new page cannot forget.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib import admin
from django.contrib.auth.tokens import default_token_generator
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from drf_spectacular.generators import SchemaGenerator
from knox.models import AuthToken

from accounts.models import UserSession
from alerts import engine
from alerts.contact_models import ContactMethod
from alerts.models import Alert, EscalationPolicy, Webhook
from clinics import services as clinic_services
from clinics.models import AccessLog, ClinicClosure, Membership, RotaOverride, Rotation
from patients import services
from patients.models import CaseloadUpload

from .factories import PatientFactory, UserFactory, clinic_physician, filled_pump

PHX = ZoneInfo("America/Phoenix")
# The worked example's pump is overdue from 2026-04-30: its alert is open, its appointment ahead.
NOW = datetime(2026, 4, 30, 9, 30, tzinfo=PHX)
GIVEN, FAMILY, MRN = "Wilhelmina", "Quarrendon", "MRN-WALK-7731"
# A second patient, registered and awaiting a pump: the pages listing patients with no pump show her.
AWAITING_GIVEN, AWAITING_FAMILY, AWAITING_MRN = "Theodora", "Vantongeren", "MRN-WALK-7732"

# Patterns the walk does not request, each with its reason. Every other named pattern is reversed
# with the fixture and requested; a new pattern that can be neither fails the walk until it is
# given kwargs below or a reason here.
NOT_WALKED = {
    "admin:": "the Django admin is for superusers only (catalogues, configuration); care staff and "
    "clinic admins are redirected away from every admin page. A superuser's reads there are walked by "
    "test_a_superuser_reading_patients_in_the_django_admin_is_access_logged",
    "calendar-issue": "POST only: creates a new calendar link (its page shows the link, no patient)",
    "calendar-revoke": "POST only: revokes the calendar links",
    "logout": "signs the walking user out",
}

# The minimum the walk must cover, so it cannot pass on an empty or broken walk.
MIN_PAGES_ANSWERED = 50
MIN_PAGES_SHOWING_THE_PATIENT = 20


@dataclass
class World:
    clinic: object
    nurse: object
    clinic_admin: object
    patient: object
    pump: object
    refill: object
    appointment: object
    alert: object
    feed_token: str


@pytest.fixture
def world(clinic, nurse, clinic_admin):
    physician = clinic_physician(clinic)
    pump = filled_pump(
        clinic,
        nurse,
        patient={"given_name": GIVEN, "family_name": FAMILY, "mrn": MRN},
        assigned_nurse=nurse,
    )
    appointment, _ = services.schedule_appointment(
        pump=pump,
        actor=nurse,
        kind="refill",
        assigned_to=nurse,
        scheduled_for=NOW + timedelta(days=1),
        now=NOW - timedelta(days=2),
    )
    PatientFactory(clinic=clinic, given_name=AWAITING_GIVEN, family_name=AWAITING_FAMILY, mrn=AWAITING_MRN)
    engine.run_scan(NOW - timedelta(minutes=5))
    alert = Alert.objects.open().get(pump=pump)
    rotation = Rotation.objects.filter(clinic=clinic).order_by("pk").first()
    nurse_membership = Membership.objects.get(user=nurse, clinic=clinic)
    RotaOverride.objects.create(
        rotation=rotation, membership=nurse_membership, starts_at=NOW, ends_at=NOW + timedelta(hours=8)
    )
    ClinicClosure.objects.create(clinic=clinic, first_day=NOW.date(), last_day=NOW.date(), reason="Staff training")
    Webhook.objects.create(clinic=clinic, url="https://receiver.example/itb", secret="s" * 32)
    CaseloadUpload.objects.create(
        clinic=clinic,
        uploaded_by=clinic_admin,
        uploaded_at=NOW,
        filename="caseload.csv",
        content=f"mrn,given_name,family_name\n{MRN},{GIVEN},{FAMILY}\n".encode(),
    )
    ContactMethod.objects.create(
        user=nurse, label="Work phone", scheme="ntfys", url_encrypted="-", display="ntfys://…", created_at=NOW
    )
    UserSession.objects.create(user=nurse, session_key="walk-session")
    AuthToken.objects.create(nurse)
    assert physician is not None
    return World(
        clinic=clinic,
        nurse=nurse,
        clinic_admin=clinic_admin,
        patient=pump.patient,
        pump=pump,
        refill=pump.refills.get(),
        appointment=appointment,
        alert=alert,
        feed_token=clinic_services.issue_calendar_feed(user=nurse),
    )


# Pages of one pump whose names do not start with "pump".
PUMP_PAGES = {
    "program-change",
    "program-preview",
    "handover-summary",
    "refill-create",
    "refill-preview",
    "appointment-create",
}


def _kwargs_for(name: str, params: list[str], w: World, user) -> dict | None:
    """The fixture's value for each of the pattern's parameters (None: the walk has none for it)."""
    clinic = w.clinic
    by_name = {
        "patient-detail": {"pk": w.patient.pk},
        "patient-edit": {"pk": w.patient.pk},
        "patient-status": {"pk": w.patient.pk},
        "pump-implant": {"pk": w.patient.pk},
        "pump-implant-preview": {"pk": w.patient.pk},
        "api-patient": {"pk": w.patient.pk},
        "api-patient-implant": {"pk": w.patient.pk},
        "refill-card": {"pk": w.refill.pk},
        "refill-amend": {"pk": w.refill.pk},
        "api-refill": {"pk": w.refill.pk},
        "appointment-status": {"pk": w.appointment.pk, "action": "complete"},
        "api-appointment-complete": {"pk": w.appointment.pk},
        "api-appointment-missed": {"pk": w.appointment.pk},
        "api-appointment-cancel": {"pk": w.appointment.pk},
        "alert-detail": {"pk": w.alert.pk},
        "alert-acknowledge": {"pk": w.alert.pk},
        "alert-resolve": {"pk": w.alert.pk},
        "alert-conclude": {"pk": w.alert.pk},
        "api-alert-acknowledge": {"pk": w.alert.pk},
        "api-alert-resolve": {"pk": w.alert.pk},
        "program-countersign": {"pk": w.pump.programs.first().pk},
        "api-program-countersign": {"pk": w.pump.programs.first().pk},
        "calendar-feed": {"token": w.feed_token},
        "notification-rule": {"severity": w.alert.severity},
        "contact-method-verify": {"pk": ContactMethod.objects.get(user=w.nurse).pk},
        "contact-method-code": {"pk": ContactMethod.objects.get(user=w.nurse).pk},
        "contact-method-remove": {"pk": ContactMethod.objects.get(user=w.nurse).pk},
        "account-session-end": {"record_id": UserSession.objects.filter(user=w.nurse).first().pk},
        "account-token-end": {"token_key": AuthToken.objects.filter(user=w.nurse).first().token_key},
        "password_reset_confirm": {
            "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
            "token": default_token_generator.make_token(user),
        },
        "clinic-staff-edit": {"membership_id": Membership.objects.get(user=w.nurse).pk},
        "clinic-staff-active": {"membership_id": Membership.objects.get(user=w.nurse).pk},
        "clinic-staff-two-factor-reset": {"membership_id": Membership.objects.get(user=w.nurse).pk},
        "clinic-rotation-edit": {"rotation_id": Rotation.objects.filter(clinic=clinic).first().pk},
        "clinic-rota-override-remove": {"override_id": RotaOverride.objects.get().pk},
        "clinic-closure": {"closure_id": ClinicClosure.objects.get().pk},
        "clinic-closure-remove": {"closure_id": ClinicClosure.objects.get().pk},
        "clinic-policy-edit": {"policy_id": EscalationPolicy.objects.filter(clinic=clinic).first().pk},
        "clinic-webhook-active": {"webhook_id": Webhook.objects.get().pk},
        "clinic-import-commit": {"upload_id": CaseloadUpload.objects.get().pk},
        "clinic-import-template": {"fmt": "csv"},
        "clinic-history": {"kind": "patient", "pk": w.patient.pk},
    }
    kwargs = dict(by_name.get(name, {}))
    if "clinic_id" in params:
        kwargs["clinic_id"] = clinic.pk
    if "pk" in params and "pk" not in kwargs and (name.startswith(("pump", "api-pump")) or name in PUMP_PAGES):
        kwargs["pk"] = w.pump.pk
    if set(kwargs) != set(params):
        return None
    return kwargs


def _named_patterns(patterns=None, namespace="", prefix_params=()):
    """(full name, parameter names) of every named URL pattern, includes followed."""
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            params = (*prefix_params, *entry.pattern.converters)
            yield from _named_patterns(entry.url_patterns, inner, params)
        elif isinstance(entry, URLPattern) and entry.name:
            yield f"{namespace}{entry.name}", [*prefix_params, *entry.pattern.converters]


def _not_walked(name: str) -> str | None:
    return next((reason for key, reason in NOT_WALKED.items() if name == key or name.startswith(key)), None)


def _body(response) -> bytes:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content)
    return response.content


def _shows_the_patient(body: bytes) -> bool:
    return any(part.encode() in body for part in (FAMILY, MRN, AWAITING_FAMILY, AWAITING_MRN))


class Walk:
    """GETs as each user; records what was answered and what showed the patient without a log row."""

    def __init__(self, world):
        from .conftest import SignedInClient

        self.world = world
        self.clients = {}
        for user in (world.nurse, world.clinic_admin):
            self.clients[user.pk] = SignedInClient()
            self.clients[user.pk].force_login(user)
        self.anonymous = SignedInClient()
        self.answered: list[str] = []
        self.showing: list[str] = []
        self.unlogged: list[str] = []
        self.clinicless: list[str] = []

    def get(self, user, label: str, path: str, *, anonymous: bool = False):
        client = self.anonymous if anonymous else self.clients[user.pk]
        before = AccessLog.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        response = client.get(path)
        body = _body(response)
        written = AccessLog.objects.filter(pk__gt=before)
        where = f"{label} ({path}) as {user.username}"
        if response.status_code == 200:
            self.answered.append(where)
        for row in written:
            if row.action in {AccessLog.Action.VIEW, AccessLog.Action.API, AccessLog.Action.FEED} and not row.clinic_id:
                self.clinicless.append(f"{where}: {row.action} row with no clinic")
        if not _shows_the_patient(body):
            return
        self.showing.append(where)
        if not written.filter(user=user, clinic=self.world.clinic).exists():
            self.unlogged.append(f"{where} → {response.status_code}")


@pytest.mark.django_db
def test_every_page_and_api_answer_showing_a_patient_writes_the_access_log(world):
    walk = Walk(world)
    unreversible = []
    with time_machine.travel(NOW, tick=False):
        for name, params in _named_patterns():
            if _not_walked(name):
                continue
            for user in (world.nurse, world.clinic_admin):
                kwargs = _kwargs_for(name, params, world, user)
                if kwargs is None:
                    unreversible.append(f"{name} {params}")
                    break
                # The calendar feed is fetched by calendar apps, with no session.
                walk.get(user, name, reverse(name, kwargs=kwargs), anonymous=name == "calendar-feed")
                if name == "calendar-feed":
                    break

        for path, params in _schema_get_paths():
            for user in (world.nurse, world.clinic_admin):
                walk.get(user, f"schema GET {path}", _fill_schema_path(path, params, world))

    assert not unreversible, f"give these patterns kwargs in the walk or a reason in NOT_WALKED: {unreversible}"
    assert not walk.unlogged, "showed the patient without an access-log row:\n" + "\n".join(walk.unlogged)
    assert not walk.clinicless, "access-log rows no clinic admin can see:\n" + "\n".join(walk.clinicless)
    assert len(walk.answered) >= MIN_PAGES_ANSWERED, walk.answered
    assert len(walk.showing) >= MIN_PAGES_SHOWING_THE_PATIENT, walk.showing


# --- the Django admin ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_superuser_reading_patients_in_the_django_admin_is_access_logged(world):
    """A superuser reads every clinic's records in the Django admin: each changelist, change form,
    change history and historical version of every registered model (a few rows of each, the
    fixture's among them) that shows a fixture patient writes a row, by the superuser, in the
    patient's clinic — so a model registered later cannot forget either."""
    from .conftest import SignedInClient

    superuser = UserFactory(username="walk-root", is_superuser=True, is_staff=True)
    walk = Walk(world)
    walk.clients[superuser.pk] = SignedInClient()
    walk.clients[superuser.pk].force_login(superuser)
    with time_machine.travel(NOW, tick=False):
        for model, model_admin in admin.site._registry.items():
            info = f"admin:{model._meta.app_label}_{model._meta.model_name}"
            walk.get(superuser, f"{info}_changelist", reverse(f"{info}_changelist"))
            for obj in model._default_manager.order_by("pk")[:3]:
                walk.get(superuser, f"{info}_change", reverse(f"{info}_change", args=[obj.pk]))
                walk.get(superuser, f"{info}_history", reverse(f"{info}_history", args=[obj.pk]))
                history = getattr(obj, "history", None)
                version = history.order_by("history_id").first() if history is not None else None
                if version is not None and hasattr(model_admin, "history_form_view"):
                    path = reverse(f"{info}_simple_history", args=[obj.pk, version.history_id])
                    walk.get(superuser, f"{info}_simple_history", path)

    assert not walk.unlogged, "the admin showed a patient without an access-log row:\n" + "\n".join(walk.unlogged)
    assert not walk.clinicless, "access-log rows no clinic admin can see:\n" + "\n".join(walk.clinicless)
    shown = {where.split(" ")[0] for where in walk.showing}
    assert {
        "admin:patients_patient_changelist",
        "admin:patients_patient_change",
        "admin:patients_patient_history",
        "admin:patients_patient_simple_history",
        "admin:patients_pump_changelist",
        "admin:patients_pump_change",
    } <= shown, shown
    # The records that name no patient on their page (a refill shows its pump's serial) are logged too.
    refill_read = AccessLog.objects.filter(
        user=superuser, detail=f"Django admin: change form of refill visit {world.refill.pk}"
    )
    assert refill_read.get().object_id == world.patient.pk
    listed = AccessLog.objects.filter(user=superuser, detail__startswith="Django admin: alerts list")
    assert list(listed.values_list("clinic", flat=True)) == [world.clinic.pk]


# --- the API schema ----------------------------------------------------------------------------

# The object a path parameter names, by the collection segment before it ("/pumps/{id}/…").
SCHEMA_OBJECTS = {
    "patients": "patient",
    "pumps": "pump",
    "refills": "refill",
    "appointments": "appointment",
    "alerts": "alert",
}


def _schema_get_paths():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    for path, operations in schema["paths"].items():
        if "get" in operations:
            params = [p["name"] for p in operations["get"].get("parameters", []) if p["in"] == "path"]
            yield path, params


def _fill_schema_path(path: str, params: list[str], w: World) -> str:
    segments = path.strip("/").split("/")
    filled = []
    for index, segment in enumerate(segments):
        if segment.startswith("{") and segment.endswith("}"):
            collection = segments[index - 1]
            assert collection in SCHEMA_OBJECTS, f"the walk has no fixture object for {path}: add it to SCHEMA_OBJECTS"
            segment = str(getattr(w, SCHEMA_OBJECTS[collection]).pk)
        filled.append(segment)
    return "/" + "/".join(filled) + ("/" if path.endswith("/") else "")


@pytest.mark.django_db
def test_the_schema_walk_covers_the_patient_list_and_reads(world):
    """The schema half of the walk reaches the API's patient reads (not only the web pages)."""
    paths = {path for path, _ in _schema_get_paths()}
    assert {
        "/api/v1/patients/",
        "/api/v1/patients/{id}/",
        "/api/v1/pumps/",
        "/api/v1/alerts/",
        "/api/v1/pumps/{id}/handover/",
    } <= paths
    assert _fill_schema_path("/api/v1/pumps/{id}/projection/", ["id"], world) == (
        f"/api/v1/pumps/{world.pump.pk}/projection/"
    )


@pytest.mark.django_db
def test_a_calendar_feed_fetch_is_in_its_clinic_admins_access_log(client, world):
    with time_machine.travel(NOW, tick=False):
        assert client.get(reverse("calendar-feed", args=[world.feed_token])).status_code == 200
    row = AccessLog.objects.get(action=AccessLog.Action.FEED)
    assert (row.user, row.clinic) == (world.nurse, world.clinic)
    client.force_login(world.clinic_admin)
    page = client.get(reverse("clinic-access-log", args=[world.clinic.pk]))
    assert "Fetched feed" in page.content.decode()
