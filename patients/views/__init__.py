"""Staff pages, one module per page or workflow (STYLE.md: split views past a few hundred lines)."""

from .events import pump_event
from .records import patient_detail, pump_detail
from .refills import refill_amend, refill_card, refill_create, refill_preview
from .scheduling import appointment_create, appointment_status, schedule_week
from .worklist import home

__all__ = [
    "appointment_create",
    "appointment_status",
    "home",
    "patient_detail",
    "pump_detail",
    "pump_event",
    "refill_amend",
    "refill_card",
    "refill_create",
    "refill_preview",
    "schedule_week",
]
