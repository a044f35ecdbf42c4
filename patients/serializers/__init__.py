"""API serializers for the pump and drug catalogues, patients, pumps and their care records.

Input serializers only parse and check shapes (decimals, choices, offsets, ids in the user's
scope); every clinical rule is the service's (``patients.services``), which refuses per field.
Output serializers show times in the pump's clinic's zone.

The package is split by resource (``catalogue``, ``patients``, ``pumps`` with implant, explant
and replace, ``refills``, ``programs``, ``appointments``, ``events``, ``handover``; ``common``: the shared
field shapes and helpers); every public name is importable from ``patients.serializers`` itself.
"""

from .appointments import AppointmentCreateSerializer, AppointmentSerializer, ScheduledAppointmentSerializer
from .catalogue import PumpModelSerializer
from .common import (
    CENT,
    CONCENTRATION,
    DOSE,
    RATE,
    REASON,
    TEXT,
    VOLUME,
    User,
    active_pump_models,
    concentration,
    dose,
    pump_zone,
    users_patients,
    volume,
)
from .events import PumpEventCreateSerializer, PumpEventSerializer
from .handover import HandoverSummarySerializer
from .patients import PATIENT_RISK_HELP, PatientSerializer, PatientUpdateSerializer
from .programs import ProgramCreateSerializer, ProgramSerializer
from .pumps import (
    FirstFillSerializer,
    ProjectionSerializer,
    PumpExplantSerializer,
    PumpImplantSerializer,
    PumpReplaceSerializer,
    PumpSerializer,
    PumpUpdateSerializer,
)
from .refills import RefillAmendSerializer, RefillCreateSerializer, RefillVisitSerializer, withdrawal_signs_field

__all__ = [
    "User",
    "VOLUME",
    "DOSE",
    "CONCENTRATION",
    "RATE",
    "TEXT",
    "REASON",
    "CENT",
    "volume",
    "dose",
    "concentration",
    "users_patients",
    "active_pump_models",
    "pump_zone",
    "PumpModelSerializer",
    "PATIENT_RISK_HELP",
    "PatientSerializer",
    "PatientUpdateSerializer",
    "ProjectionSerializer",
    "PumpSerializer",
    "PumpUpdateSerializer",
    "FirstFillSerializer",
    "PumpImplantSerializer",
    "PumpReplaceSerializer",
    "PumpExplantSerializer",
    "withdrawal_signs_field",
    "RefillCreateSerializer",
    "RefillAmendSerializer",
    "RefillVisitSerializer",
    "ProgramCreateSerializer",
    "ProgramSerializer",
    "AppointmentCreateSerializer",
    "AppointmentSerializer",
    "ScheduledAppointmentSerializer",
    "PumpEventCreateSerializer",
    "PumpEventSerializer",
    "HandoverSummarySerializer",
]
