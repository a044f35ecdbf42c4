"""Factory-built, synthetic test data (no real patient ever appears in a test)."""

from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import factory
from django.contrib.auth import get_user_model

from clinics.models import Clinic, Membership, Role
from patients.models import DrugProduct, Patient, Pump, PumpModel

PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"staff{n}")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    email = factory.LazyAttribute(lambda u: f"{u.username}@clinic.example")
    password = factory.django.Password(PASSWORD)


class ClinicFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Clinic

    name = factory.Sequence(lambda n: f"Test Pump Clinic {n}")
    timezone = "America/Phoenix"
    phone = "+1 555 0100"


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    clinic = factory.SubFactory(ClinicFactory)
    role = Role.NURSE


def member(clinic, role=Role.NURSE, **user_fields):
    """A user with one active membership of ``clinic`` in ``role``."""
    user = UserFactory(**user_fields)
    MembershipFactory(user=user, clinic=clinic, role=role)
    return user


def pump_model(name="SynchroMed II 40 mL", manufacturer="Medtronic") -> PumpModel:
    return PumpModel.objects.get(manufacturer=manufacturer, name=name)


def drug_product(concentration, name="Gablofen") -> DrugProduct:
    return DrugProduct.objects.get(name=name, concentration_mcg_per_ml=Decimal(concentration))


class PatientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Patient

    clinic = factory.SubFactory(ClinicFactory)
    mrn = factory.Sequence(lambda n: f"TEST{n:06d}")
    given_name = factory.Faker("first_name")
    family_name = factory.Faker("last_name")
    birth_date = date(1970, 1, 1)


class PumpFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Pump

    patient = factory.SubFactory(PatientFactory)
    pump_model = factory.LazyFunction(pump_model)
    serial_number = factory.Sequence(lambda n: f"SN{n:07d}")
    implanted_on = date(2025, 6, 1)
    lra_ml = factory.LazyAttribute(lambda p: p.pump_model.default_lra_ml)


# CLINICAL.md's worked example: 40 mL of 2000 mcg/mL at 600 mcg/day, filled 2026-01-05 09:00
# America/Phoenix: due 2026-04-29, overdue from 2026-04-30, critical from 2026-05-04 00:14:17.
WORKED_EXAMPLE_FILL = datetime(2026, 1, 5, 9, tzinfo=ZoneInfo("America/Phoenix"))


def filled_pump(clinic, actor, performed_at=WORKED_EXAMPLE_FILL, *, patient=None, refill=None, **pump_fields) -> Pump:
    """A pump of ``clinic`` filled as in the worked example (through the refill service);
    ``refill`` adds fields to the refill (a drug product, an ordering physician)."""
    from patients import services

    pump = PumpFactory(patient=PatientFactory(clinic=clinic, **(patient or {})), **pump_fields)
    refill = first_fill_order(pump, actor, refill or {})
    services.record_refill(
        pump=pump,
        actor=actor,
        performed_at=performed_at,
        aspirated_ml=Decimal(0),
        volume_added_ml=Decimal(40),
        concentration_mcg_per_ml=Decimal(2000),
        daily_dose_mcg=Decimal(600),
        now=performed_at,
        **refill,
    )
    return pump


def enrol_authenticator(user):
    """A confirmed authenticator (django-otp TOTP device) for ``user``, as after enrolment."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    return device or TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=True)


def current_code(device, steps_ahead: int = 0) -> str:
    """The code the authenticator app shows now (RFC 6238, the device's own parameters);
    ``steps_ahead=1`` is the next 30-second window's (a code is accepted once, and one step of
    clock drift either way)."""
    from django_otp.oath import TOTP

    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = totp.time + steps_ahead * device.step
    return f"{totp.token():0{device.digits}d}"


def put_on_rota(clinic, *users, role=None):
    """Make ``users`` (in turn order) the members of the clinic's default rotation of ``role``
    (the first user's role when not given): with one user, they are always on call."""
    from clinics.models import Rotation

    memberships = [Membership.objects.get(user=user, clinic=clinic) for user in users]
    rotation = Rotation.objects.filter(clinic=clinic, role=role or memberships[0].role).order_by("pk").first()
    rotation.member_ids = [m.pk for m in memberships]
    rotation.starts_on = date(2000, 1, 3)  # a Monday long ago: the rota runs at every time a test picks
    rotation.save(update_fields=["member_ids", "starts_on"])
    return rotation


def first_fill_order(pump, actor, extra: dict) -> dict:
    """A first fill is a dose change: a nurse's names the ordering physician (DESIGN.md). Adds
    the clinic's physician to ``extra`` when a nurse fills a pump never filled and names nobody."""
    from clinics.access import role_in

    extra = dict(extra)
    clinic = pump.patient.clinic
    if (
        actor is not None
        and "ordered_by" not in extra
        and role_in(actor, clinic.pk) == Role.NURSE
        and not pump.refills.exists()
    ):
        extra["ordered_by"] = clinic_physician(clinic)
    return extra


def clinic_physician(clinic):
    """The clinic's first physician, or a new one."""
    membership = Membership.objects.filter(clinic=clinic, role=Role.PHYSICIAN, is_active=True).first()
    return membership.user if membership else member(clinic, Role.PHYSICIAN)
