"""Import an existing refill log (CSV) through the same service as the form and the API.

Columns (header row required): clinic, mrn, pump_serial, performed_at (ISO 8601 with offset),
aspirated_ml, volume_added_ml, concentration_mcg_per_ml, daily_dose_mcg, and optionally
bolus_mcg_per_day, drug_lot, drug_expires_on (YYYY-MM-DD), performed_elsewhere,
discrepancy_reason, stop_reason, notes. Rows are applied oldest first per pump. The file is
all-or-nothing: one refused row stores nothing, and every refusal is printed with its row number.
History records the system user as the actor.
"""

import csv
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from patients import services
from patients.models import Pump

REQUIRED = [
    "clinic",
    "mrn",
    "pump_serial",
    "performed_at",
    "aspirated_ml",
    "volume_added_ml",
    "concentration_mcg_per_ml",
    "daily_dose_mcg",
]


class RowError(Exception):
    pass


def _decimal(row, field, default=None):
    value = (row.get(field) or "").strip()
    if not value:
        if default is not None:
            return default
        raise RowError(f"{field}: required")
    try:
        return Decimal(value)
    except InvalidOperation:
        raise RowError(f"{field}: not a number: {value!r}") from None


def _instant(value):
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise RowError(f"performed_at: not an ISO 8601 time: {value!r}") from None
    if parsed.tzinfo is None:
        raise RowError("performed_at: give the UTC offset; a clinical time is never guessed")
    return parsed


class Command(BaseCommand):
    help = "Import a CSV refill log through patients.services.record_refill (all-or-nothing)."

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--dry-run", action="store_true", help="Check every row, store nothing.")

    def handle(self, path, dry_run=False, **options):
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
            if missing:
                raise CommandError(f"missing columns: {', '.join(missing)}")
            rows = list(enumerate(reader, start=2))
        errors = []
        try:
            with transaction.atomic():
                rows.sort(key=lambda item: (item[1]["clinic"], item[1]["pump_serial"], _safe_time(item[1])))
                for number, row in rows:
                    try:
                        self._import(row)
                    except RowError as exc:
                        errors.append(f"row {number}: {exc}")
                    except ValidationError as exc:
                        for field, messages in exc.message_dict.items():
                            errors.append(f"row {number}: {field}: {' '.join(messages)}")
                if errors or dry_run:
                    raise _Rollback
        except _Rollback:
            pass
        if errors:
            for line in errors:
                self.stderr.write(line)
            raise CommandError(f"{len(errors)} row(s) refused; nothing was imported.")
        verb = "checked (dry run, nothing stored)" if dry_run else "imported"
        self.stdout.write(self.style.SUCCESS(f"{len(rows)} refill(s) {verb}."))

    def _import(self, row):
        pump = (
            Pump.objects.select_related("patient__clinic", "pump_model")
            .filter(
                patient__clinic__name=row["clinic"].strip(),
                patient__mrn=row["mrn"].strip(),
                serial_number=row["pump_serial"].strip(),
            )
            .first()
        )
        if pump is None:
            raise RowError("no such pump for that clinic, MRN and serial number")
        expires = (row.get("drug_expires_on") or "").strip()
        services.record_refill(
            pump=pump,
            actor=None,
            performed_at=_instant(row["performed_at"]),
            aspirated_ml=_decimal(row, "aspirated_ml"),
            volume_added_ml=_decimal(row, "volume_added_ml"),
            concentration_mcg_per_ml=_decimal(row, "concentration_mcg_per_ml"),
            daily_dose_mcg=_decimal(row, "daily_dose_mcg"),
            bolus_mcg_per_day=_decimal(row, "bolus_mcg_per_day", Decimal("0")),
            drug_lot=(row.get("drug_lot") or "").strip(),
            drug_expires_on=date.fromisoformat(expires) if expires else None,
            performed_elsewhere=(row.get("performed_elsewhere") or "").strip(),
            discrepancy_reason=(row.get("discrepancy_reason") or "").strip(),
            stop_reason=(row.get("stop_reason") or "").strip(),
            # Imported logs were confirmed when they were written: the dose-change guard is for entry.
            dose_change_confirmed=True,
            notes=(row.get("notes") or "").strip(),
        )


class _Rollback(Exception):
    pass


def _safe_time(row):
    try:
        return _instant(row["performed_at"]).timestamp()
    except RowError:
        return 0
