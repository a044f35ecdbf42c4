"""Signals the alerting side listens to: patients never imports alerts (DESIGN.md "Layout").

Each is sent inside the writing service's transaction, so a receiver's writes commit or roll
back with the clinical record.
"""

from django.dispatch import Signal

# refill, pump, actor, now, [amended, was_discrepant, cleared_reason (an amendment left the refill
# within tolerance: its review resolves with this), discrepancy_changed (False: an amendment left the
# discrepancy as it was, flag and residuals, so no review is raised again), after_empty, evaluate
# (False: a batch evaluates the pump's conditions later, with projections_changed)]. An amendment
# sends it for the amended refill and for each later refill it recomputed.
refill_recorded = Signal()
# pump_ids, now: stored projections changed outside a refill (program, pump, patient or clinic settings)
projections_changed = Signal()
# event, pump, emergency, now
pump_event_recorded = Signal()
# appointment, now
appointment_changed = Signal()
# pump_ids, reason, actor, now, tell: pumps that left the scan (explanted, patient transferred or
# deceased); ``tell``: the assigned nurse and the clinic's physicians are told in the app
care_ended = Signal()
# program, actor, now: a physician countersigned a nurse-entered dose order
program_countersigned = Signal()
