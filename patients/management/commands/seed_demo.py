"""Create the fictional demo clinic: staff with fresh random passwords, ~30 synthetic patients.

Every name, MRN and serial number here is invented. Idempotent: running it again creates only
what is missing and prints new passwords for the demo logins. Refused when DEBUG is off.
Everything goes through the services the pages use: patients registered (with each withdrawal-risk
flag among them), pumps implanted with their first fill, refills, one patient transferred, one
pump explanted and replaced.
"""

import random
import secrets
from datetime import date, timedelta
from decimal import Decimal as D

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone
from django_otp import devices_for_user

from clinics.models import Clinic, Membership, Role
from clinics.services import ensure_default_rotations
from patients import services
from patients.models import DrugProduct, Patient, PumpModel

CLINIC_NAME = "Saguaro Pump Clinic (demo)"
GIVEN = ["Avery", "Jordan", "Riley", "Quinn", "Morgan", "Casey", "Rowan", "Emerson", "Harper", "Sage", "Reese", "Blake"]
FAMILY = ["Testwell", "Example", "Sampleton", "Demoford", "Placeholder", "Mockridge", "Fictive", "Notreal", "Madeup"]

# (scenario, days since the last refill, dose mcg/day, concentration, pump model name)
# With 40 mL at 600 mcg/day and 2000 mcg/mL the conservative alarm comes ~120.6 days after the fill.
SCENARIOS = [
    ("recently refilled", 5, D("600"), D("2000"), "SynchroMed II 40 mL"),
    ("recently refilled", 20, D("450"), D("2000"), "SynchroMed II 40 mL"),
    ("recently refilled", 12, D("150"), D("500"), "SynchroMed II 20 mL"),
    ("transferred", 50, D("500"), D("2000"), "SynchroMed II 40 mL"),
    ("explanted and replaced", 20, D("550"), D("2000"), "SynchroMed II 40 mL"),
    ("ok", 40, D("600"), D("2000"), "SynchroMed II 40 mL"),
    ("ok", 60, D("300"), D("2000"), "Prometra II 40 mL"),
    ("due soon", 105, D("600"), D("2000"), "SynchroMed II 40 mL"),
    ("due soon", 100, D("620"), D("2000"), "SynchroMed II 40 mL"),
    ("due soon", 46, D("150"), D("500"), "SynchroMed II 20 mL"),
    ("overdue", 116, D("600"), D("2000"), "SynchroMed II 40 mL"),
    ("overdue", 53, D("150"), D("500"), "Prometra 20 mL"),
    ("critical", 120, D("600"), D("2000"), "SynchroMed II 40 mL"),
    ("critical", 62, D("300"), D("500"), "SynchroMed II 20 mL"),
    ("stopped for MRI", 30, D("400"), D("2000"), "Prometra II 20 mL"),
    ("ERI approaching", 30, D("500"), D("2000"), "SynchroMed II 40 mL"),
    ("expiry-bound (low dose)", 170, D("90"), D("2000"), "SynchroMed II 40 mL"),
    ("constant flow", 25, None, D("1000"), "3000 30 mL"),
]


class Command(BaseCommand):
    help = "Create the fictional demo clinic (refused when DEBUG is off)."

    def add_arguments(self, parser):
        parser.add_argument("--pumps", type=int, default=30, help="How many demo pumps (scale up for benchmarks).")
        parser.add_argument("--seed", type=int, default=20261125)

    def handle(self, *args, pumps, seed, **options):
        if not settings.DEBUG:
            raise CommandError("seed_demo refuses to run with DEBUG off: demo logins must never reach production.")
        rng = random.Random(seed)
        now = timezone.now()
        with transaction.atomic():
            clinic, created = Clinic.objects.get_or_create(
                name=CLINIC_NAME,
                defaults={
                    "timezone": "America/Phoenix",
                    "phone": "+1 555 0100 (fictional)",
                    # Closed at weekends (the default) and on Arizona's public holidays.
                    "holiday_country": "US",
                    "holiday_subdivision": "AZ",
                },
            )
            if clinic.two_factor_required:
                clinic.two_factor_required = False  # the printed logins must work as printed
                clinic.save(update_fields=["two_factor_required"])
            logins = self._staff(clinic)
        existing = set(Patient.objects.filter(clinic=clinic).values_list("mrn", flat=True))
        added = 0
        for n in range(pumps):
            mrn = f"DEMO-{n + 1:05d}"
            if mrn in existing:
                continue
            with transaction.atomic():
                self._patient(clinic, n, mrn, rng, now, logins)
            added += 1
        self.stdout.write(
            self.style.SUCCESS(f"{CLINIC_NAME}: {'created' if created else 'exists'}, {added} pumps added")
        )
        self.stdout.write("Demo logins (fictional clinic, synthetic patients; passwords are new on every run):")
        for username, (role, password) in logins.items():
            self.stdout.write(f"  {role:<22} {username:<16} {password}")
        if settings.MFA_REQUIRED_FOR_ADMINS:
            self.stdout.write(
                "Two-factor sign-in is required for demo-admin and demo-superuser (MFA_REQUIRED_FOR_ADMINS): "
                "they set up an authenticator app at their first sign-in."
            )
        else:
            self.stdout.write(
                "Two-factor sign-in is off for this fictional demo clinic (MFA_REQUIRED_FOR_ADMINS=false): "
                "the passwords above are enough; anyone may still set it up on their Security page."
            )

    def _staff(self, clinic):
        User = get_user_model()
        logins = {}
        people = [
            ("demo-nurse", Role.NURSE, "Nadia", "Nurse (demo)"),
            ("demo-nurse2", Role.NURSE, "Noel", "Nurse (demo)"),
            ("demo-physician", Role.PHYSICIAN, "Pat", "Physician (demo)"),
            ("demo-admin", Role.CLINIC_ADMIN, "Ada", "Admin (demo)"),
        ]
        memberships = {}
        for username, role, first, last in people:
            user, _ = User.objects.get_or_create(
                username=username, defaults={"first_name": first, "last_name": last, "email": f"{username}@example.org"}
            )
            password = secrets.token_urlsafe(12)
            user.set_password(password)
            user.is_active = True
            user.save()
            self._not_enrolled(user)
            membership, _ = Membership.objects.get_or_create(user=user, clinic=clinic, defaults={"role": role})
            memberships[username] = membership.pk
            logins[username] = (role.label, password)
        # The two nurses take the on-call week in turn; the physician is always on call.
        nurse_rota, physician_rota = ensure_default_rotations(clinic)
        for rotation, usernames in ((nurse_rota, ["demo-nurse", "demo-nurse2"]), (physician_rota, ["demo-physician"])):
            if not rotation.member_ids:
                rotation.member_ids = [memberships[name] for name in usernames]
                rotation.save(update_fields=["member_ids"])
        root, _ = User.objects.get_or_create(
            username="demo-superuser", defaults={"email": "demo-superuser@example.org", "is_staff": True}
        )
        password = secrets.token_urlsafe(12)
        root.is_superuser = root.is_staff = root.is_active = True
        root.set_password(password)
        root.save()
        self._not_enrolled(root)
        logins["demo-superuser"] = ("superuser", password)
        return logins

    @staticmethod
    def _not_enrolled(user):
        """Demo logins sign in with the printed password alone: drop any authenticator a
        previous demo session set up (and its recovery codes)."""
        for device in list(devices_for_user(user, confirmed=None)):
            device.delete()

    def _patient(self, clinic, n, mrn, rng, now, logins):
        User = get_user_model()
        nurse = User.objects.get(username=rng.choice(["demo-nurse", "demo-nurse2"]))
        physician = User.objects.get(username="demo-physician")
        scenario, days_ago, dose, concentration, model_name = SCENARIOS[n % len(SCENARIOS)]
        if n >= len(SCENARIOS) * 2:
            # Beyond the hand-made set, spread pumps over the whole cycle.
            days_ago = rng.randint(1, 125)
        patient = services.create_patient(
            clinic=clinic,
            actor=nurse,
            mrn=mrn,
            given_name=rng.choice(GIVEN),
            family_name=rng.choice(FAMILY),
            birth_date=date(1950 + rng.randint(0, 55), rng.randint(1, 12), rng.randint(1, 28)),
            phone=f"+1 555 01{n % 100:02d} (fictional)",
            # Each withdrawal-risk flag appears in the caseload (Gablofen label).
            sci_at_or_above_t6=n % 7 == 3,
            communication_difficulty=n % 7 == 4,
            prior_withdrawal=n % 7 == 5,
            extra_margin_days=3 if n % 11 == 5 else 0,
        )
        pump_model = PumpModel.objects.get(name=model_name)
        pump_fields = {}
        if pump_model.is_constant_flow:
            pump_fields["flow_rate_ml_per_day"] = D("0.25")
        if scenario == "ERI approaching":
            pump_fields["eri_on"] = (now + timedelta(days=100)).date()
        product = DrugProduct.objects.filter(concentration_mcg_per_ml=concentration).first()
        last_fill_at = (now - timedelta(days=days_ago, hours=rng.randint(0, 6))).replace(second=0, microsecond=0)
        history = 1 if n >= len(SCENARIOS) * 2 else 3
        fill_times = [last_fill_at - timedelta(days=90 * k) for k in reversed(range(history))]
        replaced_at = None
        if scenario == "explanted and replaced":
            # The old pump's last fills, then the replacement with its own first fill.
            replaced_at, fill_times = fill_times[-1], fill_times[:-1]

        def fill(when, aspirated):
            return {
                "performed_at": when,
                "aspirated_ml": aspirated,
                "volume_added_ml": pump_model.reservoir_ml,
                "concentration_mcg_per_ml": concentration,
                "daily_dose_mcg": dose,
                "drug_product": product,
                "drug_lot": f"LOT{rng.randint(10000, 99999)}",
                "dose_change_confirmed": True,
                "ordered_by": physician,
            }

        pump = services.implant_pump(
            patient=patient,
            actor=nurse,
            pump_model=pump_model,
            serial_number=f"DEMO{n + 1:06d}",
            implanted_on=(now - timedelta(days=900)).date(),
            assigned_nurse=nurse,
            fill=fill(fill_times[0], D("0")),
            now=fill_times[0],
            **pump_fields,
        )
        for when in fill_times[1:]:
            residual = services.expected_residual_ml(pump, when)
            aspirated = max(D("0"), residual + D(rng.randint(-30, 30)) / 100)
            services.record_refill(pump=pump, actor=nurse, now=when, **fill(when, aspirated))
        if replaced_at is not None:
            replaced_on = replaced_at.astimezone(clinic.zone).date()
            pump = services.replace_pump(
                pump=pump,
                actor=physician,
                explanted_on=replaced_on,
                explant_notes="Battery at end of service (demo)",
                pump_model=pump_model,
                serial_number=f"DEMO{n + 1:06d}R",
                implanted_on=replaced_on,
                assigned_nurse=nurse,
                fill=fill(replaced_at, D("0")),
                now=replaced_at,
            )
        if scenario == "transferred":
            services.change_patient_status(
                patient=patient,
                actor=nurse,
                status="transferred",
                effective_on=(now - timedelta(days=3)).astimezone(clinic.zone).date(),
                reason="Moved out of the area (demo)",
                transferred_to="Mesa Pump Clinic (fictional)",
                accepted_first_refill_on=(now + timedelta(days=30)).astimezone(clinic.zone).date(),
                now=now,
            )
        if scenario == "stopped for MRI":
            services.change_program(
                pump=pump,
                actor=physician,
                effective_at=now - timedelta(days=2),
                daily_dose_mcg=D("0"),
                stop_reason="MRI: reservoir emptied before the scan",
                now=now,
            )
        return pump
