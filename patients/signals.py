"""Signals the alerting side listens to: patients never imports alerts (DESIGN.md "Layout").

Each is sent inside the writing service's transaction, so a receiver's writes commit or roll
back with the clinical record.
"""

from django.dispatch import Signal

# refill, pump, actor, now, [amended, was_discrepant]
refill_recorded = Signal()
# pump_ids, now: stored projections changed outside a refill (program, pump, patient or clinic settings)
projections_changed = Signal()
# event, pump, emergency, now
pump_event_recorded = Signal()
# appointment, now
appointment_changed = Signal()
