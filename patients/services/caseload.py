"""Importing a clinic's caseload from its spreadsheet (DESIGN.md flow 8): one row per pump — the
patient, the pump, its last refill and current program — by the same rules as the forms
(``plan_patient`` and ``plan_implant``, the checking halves of ``create_patient`` and
``implant_pump``), stored all-or-nothing and set-based (``store_patients``, ``store_implants``),
recorded as the clinic admin who imports.

An import never edits: a row whose MRN and serial are already registered with identical values is
skipped and counted; with different values it is refused, naming the columns that differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction

from clinics.calendar import calendar_of
from clinics.models import Clinic, Membership, Role

from ..imports import CellError, Row, RowOutcome, RowReader
from ..models import CaseloadImport, DrugProduct, Patient, Pump, PumpModel
from .common import ZERO, _now, _save
from .intake import FILL_FIELDS, PlannedImplant, plan_implant, store_implants
from .projections import batched_projection_signals
from .records import plan_patient, store_patients


@dataclass(frozen=True)
class Column:
    name: str
    meaning: str
    example: str
    required: bool = False


COLUMNS = (
    Column("mrn", "Medical record number, unique in the clinic", "MRN-004211", True),
    Column("given_name", "Given name", "Avery", True),
    Column("family_name", "Family name", "Example", True),
    Column("birth_date", "Birth date (YYYY-MM-DD or a date cell)", "1971-04-02", True),
    Column("phone", "Patient's phone", "+1 555 0100"),
    Column("caregiver_contact", "Caregiver or emergency contact", "Sam Example (spouse) +1 555 0101"),
    Column("sci_at_or_above_t6", "Spinal cord injury at or above T6 (yes/no): withdrawal risk", "no"),
    Column("communication_difficulty", "Communication difficulty (yes/no): withdrawal risk", "no"),
    Column("prior_withdrawal", "History of withdrawal (yes/no): withdrawal risk", "no"),
    Column("extra_margin_days", "Extra refill margin for this patient, whole days (travel, distance)", "0"),
    Column("pump_model", "Pump model as in the catalogue", "Medtronic SynchroMed II 40 mL", True),
    Column("serial_number", "Pump serial number", "NGP123456H", True),
    Column("implanted_on", "Implant date (YYYY-MM-DD)", "2023-05-17", True),
    Column("lra_ml", "Low-reservoir alarm threshold, mL (blank: the model's default)", "2.0"),
    Column("assigned_nurse", "Assigned nurse: user name or full name of a nurse of the clinic", "Nina Nurse"),
    Column("eri_on", "Elective replacement indicator date, if known (YYYY-MM-DD)", ""),
    Column("flow_rate_ml_per_day", "Measured flow rate, mL/day (constant-flow pumps only)", ""),
    Column("last_refill_at", "Last refill, clinic local time (YYYY-MM-DD HH:MM)", "2026-10-20 09:30", True),
    Column("aspirated_ml", "Volume aspirated at the last refill, mL", "3.1", True),
    Column("volume_added_ml", "Volume added at the last refill (the new reservoir volume), mL", "40", True),
    Column("drug_product", "Drug product name as in the catalogue (optional)", "Gablofen"),
    Column("concentration_mcg_per_ml", "Concentration, mcg/mL", "2000", True),
    Column("drug_lot", "Drug lot", "GB-2291"),
    Column("drug_expires_on", "Vial expiry or beyond-use date (required for compounded strengths)", ""),
    Column("daily_dose_mcg", "Current daily dose, mcg/day (all flex steps summed)", "450", True),
    Column("bolus_mcg_per_day", "Patient bolus allowance, mcg/day", "0"),
    Column("ordering_physician", "Ordering physician: user name or full name of a physician of the clinic", "", True),
    Column(
        "dose_confirmed",
        "yes to confirm a dose above the clinic's high-dose threshold (the guard against unit slips)",
        "no",
    ),
)
COLUMN_NAMES = [c.name for c in COLUMNS]
REQUIRED = [c.name for c in COLUMNS if c.required]
PATIENT_COLUMNS = {
    "given_name": "given_name",
    "family_name": "family_name",
    "birth_date": "birth_date",
    "phone": "phone",
    "caregiver_contact": "contact_notes",
    "sci_at_or_above_t6": "sci_at_or_above_t6",
    "communication_difficulty": "communication_difficulty",
    "prior_withdrawal": "prior_withdrawal",
    "extra_margin_days": "extra_margin_days",
}
# Service refusal fields → the spreadsheet's columns.
FIELD_COLUMNS = {
    **{field: column for column, field in PATIENT_COLUMNS.items()},
    "mrn": "mrn",
    "pump_model": "pump_model",
    "serial_number": "serial_number",
    "implanted_on": "implanted_on",
    "lra_ml": "lra_ml",
    "assigned_nurse": "assigned_nurse",
    "eri_on": "eri_on",
    "flow_rate_ml_per_day": "flow_rate_ml_per_day",
    "performed_at": "last_refill_at",
    "aspirated_ml": "aspirated_ml",
    "volume_added_ml": "volume_added_ml",
    "drug_product": "drug_product",
    "concentration_mcg_per_ml": "concentration_mcg_per_ml",
    "drug_lot": "drug_lot",
    "drug_expires_on": "drug_expires_on",
    "daily_dose_mcg": "daily_dose_mcg",
    "bolus_mcg_per_day": "bolus_mcg_per_day",
    "ordered_by": "ordering_physician",
    "dose_change_confirmed": "dose_confirmed",
}


@dataclass
class ImportResult:
    outcomes: list[RowOutcome]
    committed: bool
    # Why a commit whose rows all passed stored nothing after all: another import (or a colleague
    # on the forms) registered one of its MRNs or serials while it ran. The outcomes are stale then.
    collision: str = ""

    @property
    def refused(self) -> list[RowOutcome]:
        return [o for o in self.outcomes if o.action == "refuse"]

    def count(self, action: str) -> int:
        return sum(1 for o in self.outcomes if o.action == action)

    @property
    def count_create(self) -> int:
        return self.count("create")

    @property
    def count_skip(self) -> int:
        return self.count("skip")

    def __len__(self) -> int:
        return len(self.outcomes)


class _Lookups:
    """Everything a row is matched against, read once per file (a constant number of queries)."""

    def __init__(self, clinic: Clinic, rows: list[Row]):
        self.models = {}
        for model in PumpModel.objects.filter(is_active=True):
            self.models[str(model).lower()] = model
            self.models.setdefault(model.name.lower(), model)
        self.products = {
            (p.name.lower(), p.concentration_mcg_per_ml): p for p in DrugProduct.objects.filter(is_active=True)
        }
        self.staff: dict[str, list] = {}
        memberships = Membership.objects.filter(clinic=clinic, user__is_active=True).select_related("user")
        for membership in memberships:
            user = membership.user
            for key in {user.username.lower(), user.get_full_name().lower()} - {""}:
                self.staff.setdefault(key, []).append((user, membership.role))
        mrns = {str(row.raw("mrn") or "").strip() for row in rows} - {""}
        # Locked, as implant_pump locks its patient: a status change cannot slip in before commit.
        patients = Patient.objects.filter(clinic=clinic, mrn__in=mrns).select_related("clinic")
        patients = patients.select_for_update(of=("self",))
        self.patients = {p.mrn: p for p in patients.prefetch_related("pumps")}
        serials = {str(row.raw("serial_number") or "").strip() for row in rows} - {""}
        pumps = Pump.objects.filter(serial_number__in=serials).select_related("patient", "pump_model")
        self.pumps = {(p.pump_model_id, p.serial_number): p for p in pumps.prefetch_related("refills", "programs")}
        # Pumps planned by earlier rows of the file: {id(pump): (refills, programs)}.
        self._planned: dict[int, tuple[list, list]] = {}
        self._planned_pumps: dict[int, list[Pump]] = {}  # by id(patient), for patients not stored yet

    def planned(self, patient: Patient, planned: PlannedImplant) -> None:
        pump = planned.pump
        self.patients[patient.mrn] = patient
        self.pumps[(pump.pump_model_id, pump.serial_number)] = pump
        self._planned[id(pump)] = ([planned.refill], [planned.program])
        self._planned_pumps.setdefault(id(patient), []).append(pump)

    def record_of(self, pump: Pump) -> tuple[list, list]:
        """The pump's refills and programs: registered (prefetched) or planned by an earlier row."""
        if id(pump) in self._planned:
            return self._planned[id(pump)]
        return list(pump.refills.all()), list(pump.programs.all())

    def pumps_of(self, patient: Patient) -> list[Pump]:
        registered = list(patient.pumps.all()) if patient.pk is not None else []
        return registered + self._planned_pumps.get(id(patient), [])

    def person(self, reader: RowReader, column: str, roles: set[str]):
        name = reader.text(column, required=column in REQUIRED)
        if not name:
            return None
        matches = [user for user, role in self.staff.get(name.lower(), []) if role in roles]
        if not matches:
            who = "a physician" if roles == {Role.PHYSICIAN} else "care staff (a nurse or physician)"
            reader.refuse(column, f"not {who} of this clinic")
            return None
        if len({u.pk for u in matches}) > 1:
            reader.refuse(column, "more than one member has this name: give the user name")
            return None
        return matches[0]


def _parse(reader: RowReader, lookups: _Lookups) -> dict:
    values = {
        "mrn": reader.text("mrn", required=True, max_length=40),
        "given_name": reader.text("given_name", required=True, max_length=100),
        "family_name": reader.text("family_name", required=True, max_length=100),
        "birth_date": reader.date("birth_date", required=True),
        "phone": reader.text("phone", max_length=40),
        "contact_notes": reader.text("caregiver_contact", max_length=2000),
        "sci_at_or_above_t6": reader.flag("sci_at_or_above_t6"),
        "communication_difficulty": reader.flag("communication_difficulty"),
        "prior_withdrawal": reader.flag("prior_withdrawal"),
        "extra_margin_days": reader.whole_number("extra_margin_days"),
        "serial_number": reader.text("serial_number", required=True, max_length=60),
        "implanted_on": reader.date("implanted_on", required=True),
        "lra_ml": reader.decimal("lra_ml"),
        "eri_on": reader.date("eri_on"),
        "flow_rate_ml_per_day": reader.decimal("flow_rate_ml_per_day"),
        "performed_at": reader.instant("last_refill_at", required=True),
        "aspirated_ml": reader.decimal("aspirated_ml", required=True),
        "volume_added_ml": reader.decimal("volume_added_ml", required=True),
        "concentration_mcg_per_ml": reader.decimal("concentration_mcg_per_ml", required=True),
        "drug_lot": reader.text("drug_lot", max_length=60),
        "drug_expires_on": reader.date("drug_expires_on"),
        "daily_dose_mcg": reader.decimal("daily_dose_mcg", required=True),
        "bolus_mcg_per_day": reader.decimal("bolus_mcg_per_day", default=ZERO),
        "dose_change_confirmed": reader.flag("dose_confirmed"),
    }
    model_name = reader.text("pump_model", required=True)
    values["pump_model"] = lookups.models.get(model_name.lower()) if model_name else None
    if model_name and values["pump_model"] is None:
        reader.refuse("pump_model", "not a pump model of the catalogue")
    product_name = reader.text("drug_product")
    values["drug_product"] = None
    if product_name and values["concentration_mcg_per_ml"] is not None:
        values["drug_product"] = lookups.products.get((product_name.lower(), values["concentration_mcg_per_ml"]))
        if values["drug_product"] is None:
            reader.refuse("drug_product", "no catalogue product of this name at this concentration")
    values["assigned_nurse"] = lookups.person(reader, "assigned_nurse", {Role.NURSE, Role.PHYSICIAN})
    values["ordered_by"] = lookups.person(reader, "ordering_physician", {Role.PHYSICIAN})
    return values


def _differences(values: dict, patient: Patient, pump: Pump | None, refills=(), programs=()) -> list[str]:
    """The columns whose values differ from what is registered (an import never edits)."""
    differ = [column for column, field in PATIENT_COLUMNS.items() if getattr(patient, field) != values[field]]
    if pump is None:
        return differ
    registered_pump = {
        "implanted_on": pump.implanted_on,
        "lra_ml": pump.lra_ml,
        "assigned_nurse": pump.assigned_nurse_id,
        "eri_on": pump.eri_on,
        "flow_rate_ml_per_day": pump.flow_rate_ml_per_day,
    }
    given_pump = {
        "implanted_on": values["implanted_on"],
        "lra_ml": values["lra_ml"] if values["lra_ml"] is not None else values["pump_model"].default_lra_ml,
        "assigned_nurse": values["assigned_nurse"].pk if values["assigned_nurse"] else None,
        "eri_on": values["eri_on"],
        "flow_rate_ml_per_day": values["flow_rate_ml_per_day"],
    }
    differ += [column for column in registered_pump if registered_pump[column] != given_pump[column]]
    refills = sorted(refills, key=lambda r: r.performed_at)
    programs = sorted(programs, key=lambda p: (p.effective_at, p.pk or 0))
    last = refills[-1] if refills else None
    program = programs[-1] if programs else None
    if last is None or program is None:
        return [*differ, "last_refill_at"]
    registered = {
        "last_refill_at": last.performed_at,
        "aspirated_ml": last.aspirated_ml,
        "volume_added_ml": last.volume_added_ml,
        "drug_product": last.drug_product_id,
        "concentration_mcg_per_ml": last.concentration_mcg_per_ml,
        "drug_lot": last.drug_lot,
        "drug_expires_on": last.drug_expires_on,
        "daily_dose_mcg": program.daily_dose_mcg,
        "bolus_mcg_per_day": program.bolus_mcg_per_day,
    }
    given = {
        "last_refill_at": values["performed_at"],
        "aspirated_ml": values["aspirated_ml"],
        "volume_added_ml": values["volume_added_ml"],
        "drug_product": values["drug_product"].pk if values["drug_product"] else last.drug_product_id,
        "concentration_mcg_per_ml": values["concentration_mcg_per_ml"],
        "drug_lot": values["drug_lot"],
        "drug_expires_on": values["drug_expires_on"],
        "daily_dose_mcg": values["daily_dose_mcg"],
        "bolus_mcg_per_day": values["bolus_mcg_per_day"],
    }
    return differ + [column for column in registered if registered[column] != given[column]]


def _refusal_errors(number: int, exc: ValidationError, row: Row) -> list[CellError]:
    errors = []
    for field, messages in exc.message_dict.items():
        column = FIELD_COLUMNS.get(field, field)
        value = row.raw(column)
        errors.append(CellError(number, column, "" if value is None else str(value), " ".join(messages)))
    return errors


def import_caseload(
    *, clinic: Clinic, actor, rows: list[Row], commit: bool, filename: str = "", now: datetime | None = None
) -> ImportResult:
    """Check every row and, with ``commit``, store them all or nothing (a dry run stores nothing).
    Each row's outcome says what it creates — with the new pump's status, refill due date and
    conservative alarm — or why it is refused, as (row, column, value, rule).

    Every row is checked by the services' own rules (``plan_patient``, ``plan_implant``: the
    forms' refusals) against the clinic's keys read once, so the dry run writes nothing; the
    commit then stores all the rows set-based — a constant number of statements per table, each
    row with its history row naming the admin — and the alerting side evaluates every new pump
    once at the end, in the same transaction."""
    now = _now(now)
    if actor is not None and not actor.has_perm("clinics.import_caseload", clinic):
        raise PermissionDenied("Only this clinic's administrators import its caseload.")
    outcomes: list[RowOutcome] = []
    missing = [name for name in REQUIRED if rows and name not in rows[0].values]
    if missing:
        number = rows[0].number - 1
        errors = [CellError(number, name, "", "missing column (download the template)") for name in missing]
        return ImportResult([RowOutcome(number, "refuse", "header", errors)], committed=False)
    with transaction.atomic():
        lookups = _Lookups(clinic, rows)
        calendar = calendar_of(clinic)
        new_patients: list[Patient] = []
        planned_patients: set[int] = set()
        implants: list[PlannedImplant] = []
        for row in rows:
            outcome, planned = _check_row(clinic, actor, row, lookups, now, calendar)
            outcomes.append(outcome)
            if planned is not None:
                implants.append(planned)
                patient = planned.pump.patient
                if patient.pk is None and id(patient) not in planned_patients:
                    planned_patients.add(id(patient))
                    new_patients.append(patient)
        committed = commit and not any(o.action == "refuse" for o in outcomes)
        if committed:
            try:
                # A savepoint: after a collision the transaction is still usable to name it.
                with transaction.atomic():
                    with batched_projection_signals():
                        store_patients(new_patients, actor)
                        store_implants(implants, actor, now)
                    _save(
                        CaseloadImport(
                            clinic=clinic,
                            imported_by=actor,
                            imported_at=now,
                            filename=filename[:200],
                            created_count=sum(1 for o in outcomes if o.action == "create"),
                            skipped_count=sum(1 for o in outcomes if o.action == "skip"),
                        ),
                        actor,
                    )
            except IntegrityError:
                # Checked against the keys read at the start, the rows were new then; a unique key
                # taken since (a concurrent import of the same MRN, a patient registered on the
                # form) refuses the whole file, as any refused row does.
                collision = _collision(clinic, new_patients, implants)
                transaction.set_rollback(True)
                return ImportResult(outcomes, committed=False, collision=collision)
    return ImportResult(outcomes, committed)


def _collision(clinic: Clinic, new_patients: list[Patient], implants: list[PlannedImplant]) -> str:
    """The clinic's words for a commit that met a unique key taken while it ran: which MRNs or
    serials someone else registered meanwhile (read now: they are committed, or ours)."""
    mrns = sorted(
        Patient.objects.filter(clinic=clinic, mrn__in=[p.mrn for p in new_patients]).values_list("mrn", flat=True)
    )
    keys = {(planned.pump.pump_model_id, planned.pump.serial_number) for planned in implants}
    serials = sorted(
        serial
        for model_id, serial in Pump.objects.filter(serial_number__in={s for _m, s in keys}).values_list(
            "pump_model_id", "serial_number"
        )
        if (model_id, serial) in keys
    )

    def some(values: list[str]) -> str:
        return ", ".join(values[:5]) + (f" and {len(values) - 5} more" if len(values) > 5 else "")

    if mrns:
        what = f"MRN{'s' if len(mrns) > 1 else ''} {some(mrns)}"
    elif serials:
        what = f"pump serial{'s' if len(serials) > 1 else ''} {some(serials)}"
    else:
        what = "a record this file also adds"
    return (
        f"Another import or a colleague added {what} while this one ran; nothing from this file was "
        "stored. Run the dry run again."
    )


def _check_row(
    clinic: Clinic, actor, row: Row, lookups: _Lookups, now: datetime, calendar
) -> tuple[RowOutcome, PlannedImplant | None]:
    reader = RowReader(row, clinic.zone)
    values = _parse(reader, lookups)
    label = f"{values['mrn']} · {values['serial_number']}".strip(" ·")

    def refused(errors=None):
        return RowOutcome(row.number, "refuse", label, errors or reader.errors), None

    if reader.errors:
        return refused()
    patient = lookups.patients.get(values["mrn"])
    key = (values["pump_model"].pk, values["serial_number"])
    pump = lookups.pumps.get(key)
    if pump is not None:
        if patient is None or not (pump.patient is patient or pump.patient_id == patient.pk is not None):
            reader.refuse("serial_number", "this pump is registered to another patient")
            return refused()
        differ = _differences(values, patient, pump, *lookups.record_of(pump))
        if not differ:
            skip = RowOutcome(row.number, "skip", label, details={"reason": "already imported"})
            return skip, None
        for column in differ:
            reader.refuse(column, "differs from the registered record (an import never edits: change it in the app)")
        return refused()
    if patient is not None:
        differ = _differences(values, patient, None)
        for column in differ:
            reader.refuse(column, "differs from the registered patient with this MRN")
        in_service = [p for p in lookups.pumps_of(patient) if p.status == Pump.Status.ACTIVE]
        if in_service and not differ:
            reader.refuse(
                "serial_number", f"this patient already has a pump in service (#{in_service[0].serial_number})"
            )
        if reader.errors:
            return refused()
    try:
        if patient is None:
            fields = {f: values[f] for f in PATIENT_COLUMNS.values()}
            # The MRN was looked up among the clinic's (and this file's) at once: no query a row.
            patient = plan_patient(clinic=clinic, mrn=values["mrn"], unique_checked=True, **fields)
        planned = plan_implant(
            patient=patient,
            actor=actor,
            pump_model=values["pump_model"],
            serial_number=values["serial_number"],
            implanted_on=values["implanted_on"],
            lra_ml=values["lra_ml"],
            assigned_nurse=values["assigned_nurse"],
            eri_on=values["eri_on"],
            flow_rate_ml_per_day=values["flow_rate_ml_per_day"],
            fill={name: values[name] for name in FILL_FIELDS if name in values},
            now=now,
            calendar=calendar,
            serial_registered=False,  # not in lookups.pumps: neither registered nor earlier in the file
        )
    except ValidationError as exc:
        return refused(_refusal_errors(row.number, exc, row))
    lookups.planned(patient, planned)  # a later row of the same patient or pump finds it
    projection = planned.projection
    details = {
        "daily_dose_mcg": values["daily_dose_mcg"],
        "status": projection.status_at(now),
        "refill_due_on": projection.refill_due_on,
        "unmoved_refill_due_on": projection.unmoved_refill_due_on,
        "conservative_lra_at": projection.conservative_lra_at,
    }
    return RowOutcome(row.number, "create", label, details=details), planned


def template_rows() -> list[list[str]]:
    """The template's data sheet: the header and one example row (to be replaced)."""
    return [COLUMN_NAMES, [c.example for c in COLUMNS]]
