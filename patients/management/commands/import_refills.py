"""Import an existing refill log (CSV or XLSX) through the same service as the form and the API.

Columns (header row required): clinic, mrn, pump_serial, performed_at (ISO 8601 with offset),
aspirated_ml, volume_added_ml, concentration_mcg_per_ml, daily_dose_mcg, and optionally
bolus_mcg_per_day, drug_lot, drug_expires_on (YYYY-MM-DD), performed_elsewhere,
discrepancy_reason, stop_reason, notes. Rows are applied oldest first per pump. The file is
all-or-nothing: one refused row stores nothing, and every refusal is printed with its row number.
History records the system user as the actor. The file is read and its cells checked by
``patients.imports``, the reader and validator the caseload import page uses too.
"""

from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from patients import services
from patients.imports import CellError, ImportFileError, RowReader, read_table
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


def describe(error: CellError) -> str:
    shown = f" (value {error.value!r})" if error.value else ""
    return f"row {error.row}: {error.column}: {error.rule}{shown}"


class Command(BaseCommand):
    help = "Import a refill log (CSV or XLSX) through patients.services.record_refill (all-or-nothing)."

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--dry-run", action="store_true", help="Check every row, store nothing.")

    def handle(self, path, dry_run=False, **options):
        try:
            rows = read_table(Path(path).read_bytes(), path)
        except ImportFileError as exc:
            raise CommandError(str(exc)) from None
        missing = [c for c in REQUIRED if rows and c not in rows[0].values]
        if missing:
            raise CommandError(f"missing columns: {', '.join(missing)}")
        errors: list[str] = []
        parsed = []
        for row in rows:
            reader = RowReader(row)  # no zone: a time without its offset is refused
            values = self._values(reader)
            errors += [describe(e) for e in reader.errors]
            parsed.append((row, values))
        with transaction.atomic():
            if not errors:
                parsed.sort(key=lambda item: (item[1]["clinic"], item[1]["pump_serial"], item[1]["performed_at"]))
                for row, values in parsed:
                    errors += self._import(row.number, values)
            if errors or dry_run:
                transaction.set_rollback(True)
        if errors:
            for line in errors:
                self.stderr.write(line)
            raise CommandError(f"{len(errors)} row(s) refused; nothing was imported.")
        verb = "checked (dry run, nothing stored)" if dry_run else "imported"
        self.stdout.write(self.style.SUCCESS(f"{len(rows)} refill(s) {verb}."))

    def _values(self, reader: RowReader) -> dict:
        return {
            "clinic": reader.text("clinic", required=True),
            "mrn": reader.text("mrn", required=True),
            "pump_serial": reader.text("pump_serial", required=True),
            "performed_at": reader.instant("performed_at", required=True),
            "aspirated_ml": reader.decimal("aspirated_ml", required=True),
            "volume_added_ml": reader.decimal("volume_added_ml", required=True),
            "concentration_mcg_per_ml": reader.decimal("concentration_mcg_per_ml", required=True),
            "daily_dose_mcg": reader.decimal("daily_dose_mcg", required=True),
            "bolus_mcg_per_day": reader.decimal("bolus_mcg_per_day", default=services.ZERO),
            "drug_lot": reader.text("drug_lot"),
            "drug_expires_on": reader.date("drug_expires_on"),
            "performed_elsewhere": reader.text("performed_elsewhere"),
            "discrepancy_reason": reader.text("discrepancy_reason"),
            "stop_reason": reader.text("stop_reason"),
            "notes": reader.text("notes"),
        }

    def _import(self, number: int, values: dict) -> list[str]:
        pump = (
            Pump.objects.select_related("patient__clinic", "pump_model")
            .filter(
                patient__clinic__name=values["clinic"],
                patient__mrn=values["mrn"],
                serial_number=values["pump_serial"],
            )
            .first()
        )
        if pump is None:
            return [f"row {number}: no such pump for that clinic, MRN and serial number"]
        fields = {k: v for k, v in values.items() if k not in ("clinic", "mrn", "pump_serial")}
        try:
            services.record_refill(
                pump=pump,
                actor=None,
                # Imported logs were confirmed when they were written: the dose-change guard is for entry.
                dose_change_confirmed=True,
                **fields,
            )
        except ValidationError as exc:
            return [f"row {number}: {field}: {' '.join(messages)}" for field, messages in exc.message_dict.items()]
        return []
