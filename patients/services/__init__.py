"""Every write with rules, one function each, one transaction each. Forms, the API, commands and
the demo seeder all call these; nothing else writes clinical records.

A refusal raises ``django.core.exceptions.ValidationError`` with a message per field (the API
answers 400 with it, forms show it beside the field) and, being inside the transaction, stores
nothing. Every save goes through the ORM with the acting user attached, so the history records
who did it (the system user for tasks and commands).

The package is split by task (projections, programs, refills, recording, amendments, records,
lifecycle, intake, caseload, scheduling, events); every public name is importable from
``patients.services`` itself.
"""

from .amendments import AMENDABLE_REFILL_FIELDS, amend_refill
from .closures import remove_closure, save_closure
from .common import (
    CENT,
    CLOCK_SKEW,
    CONSTANT_FLOW_DOSE_TOLERANCE,
    DEFAULT_MAX_DAYS_IN_PUMP,
    HUNDRED,
    ZERO,
    Refusal,
)
from .events import (
    EMERGENCY_MESSAGE,
    OVERDOSE_SIGNS,
    SYMPTOMS,
    WITHDRAWAL_SIGNS,
    is_emergency,
    record_pump_event,
)
from .lifecycle import (
    PENDING_STATUS_PREFETCH,
    apply_due_status_changes,
    change_patient_status,
    explant_pump,
    handover_summary,
    implant_pump,
    pending_status_change,
    replace_pump,
)
from .programs import (
    can_countersign,
    change_program,
    constant_flow_dose,
    countersign_program,
    dose_change_pct,
    is_clinic_physician,
    is_dose_change,
    last_nonzero_dose,
    order_signature,
    program_in_effect,
)
from .projections import (
    HISTORY_PREFETCH,
    catalogue_products,
    compute_projection,
    delivery_samples,
    margin_for,
    max_days_in_pump,
    project_record,
    recompute_projection,
    recompute_projections,
    redate_projections,
)
from .recording import record_refill
from .records import (
    CLINIC_SETTINGS,
    PATIENT_FIELDS,
    PUMP_FIELDS,
    STATUS_FIELDS,
    create_patient,
    create_pump,
    create_pump_model,
    update_clinic_settings,
    update_patient,
    update_pump,
)
from .refills import (
    FILL_FIELDS,
    EmptyReservoir,
    expected_residual_ml,
    refill_after_empty,
    residual_check,
    residual_tolerance_ml,
)
from .scheduling import (
    cancel_appointment,
    complete_appointment,
    mark_appointment_missed,
    schedule_appointment,
)

__all__ = [
    "CLOCK_SKEW",
    "ZERO",
    "HUNDRED",
    "CENT",
    "DEFAULT_MAX_DAYS_IN_PUMP",
    "CONSTANT_FLOW_DOSE_TOLERANCE",
    "Refusal",
    "catalogue_products",
    "max_days_in_pump",
    "margin_for",
    "compute_projection",
    "HISTORY_PREFETCH",
    "project_record",
    "recompute_projection",
    "recompute_projections",
    "redate_projections",
    "save_closure",
    "remove_closure",
    "dose_change_pct",
    "last_nonzero_dose",
    "constant_flow_dose",
    "change_program",
    "record_refill",
    "expected_residual_ml",
    "residual_check",
    "residual_tolerance_ml",
    "delivery_samples",
    "EMERGENCY_MESSAGE",
    "AMENDABLE_REFILL_FIELDS",
    "amend_refill",
    "PATIENT_FIELDS",
    "create_pump_model",
    "create_patient",
    "update_patient",
    "create_pump",
    "PUMP_FIELDS",
    "update_pump",
    "CLINIC_SETTINGS",
    "update_clinic_settings",
    "schedule_appointment",
    "complete_appointment",
    "mark_appointment_missed",
    "cancel_appointment",
    "WITHDRAWAL_SIGNS",
    "OVERDOSE_SIGNS",
    "SYMPTOMS",
    "is_emergency",
    "record_pump_event",
    "is_dose_change",
    "is_clinic_physician",
    "program_in_effect",
    "order_signature",
    "can_countersign",
    "countersign_program",
    "EmptyReservoir",
    "refill_after_empty",
    "FILL_FIELDS",
    "implant_pump",
    "explant_pump",
    "replace_pump",
    "change_patient_status",
    "apply_due_status_changes",
    "pending_status_change",
    "PENDING_STATUS_PREFETCH",
    "handover_summary",
    "STATUS_FIELDS",
]
