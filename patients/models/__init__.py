"""Patients, the pump and drug catalogues, pumps, dose programs, refill visits, appointments
and pump events. Volumes (mL) and doses (mcg/day) are Decimals everywhere.

Clinical records keep their full history (django-simple-history) and are changed only through
``patients.services``, which saves through the ORM so each change is recorded with its actor.

The package is split by topic (``common``: field shapes and text limits; ``catalogue``;
``patients``; ``pumps`` and their projection; ``records``: programs, refills, appointments,
events, status changes; ``caseload``: the import); every public name, the historical models
included, is importable from ``patients.models`` itself.
"""

from .catalogue import DrugProduct, HistoricalDrugProduct, HistoricalPumpModel, PumpModel
from .common import CONCENTRATION, DOSE, NOTE, NOTE_MAX_CHARS, RATE, REASON, REASON_MAX_CHARS, VOLUME
from .patients import HistoricalPatient, Patient, PatientQuerySet
from .pumps import HistoricalPump, Pump, PumpProjection, PumpQuerySet
from .records import (
    Appointment,
    AppointmentQuerySet,
    HistoricalAppointment,
    HistoricalPatientStatusChange,
    HistoricalProgram,
    HistoricalPumpEvent,
    HistoricalRefillVisit,
    PatientStatusChange,
    Program,
    PumpEvent,
    RefillVisit,
)

# isort: split
# Last, as when the models were one module: the app registry and Clinic's reverse relations
# (patients, then caseload_imports) keep their order.
from .caseload import CaseloadImport, CaseloadUpload

__all__ = [
    "VOLUME",
    "DOSE",
    "CONCENTRATION",
    "RATE",
    "NOTE_MAX_CHARS",
    "REASON_MAX_CHARS",
    "NOTE",
    "REASON",
    "PumpModel",
    "DrugProduct",
    "PatientQuerySet",
    "Patient",
    "PatientStatusChange",
    "PumpQuerySet",
    "Pump",
    "PumpProjection",
    "Program",
    "RefillVisit",
    "AppointmentQuerySet",
    "Appointment",
    "PumpEvent",
    "CaseloadImport",
    "CaseloadUpload",
    "HistoricalPumpModel",
    "HistoricalDrugProduct",
    "HistoricalPatient",
    "HistoricalPatientStatusChange",
    "HistoricalPump",
    "HistoricalProgram",
    "HistoricalRefillVisit",
    "HistoricalAppointment",
    "HistoricalPumpEvent",
]
