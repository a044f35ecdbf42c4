"""Read queries for pages and the API: scoped to the user's clinics, a constant number of queries."""

from django.db.models import OuterRef, Subquery

from .models import Pump, RefillVisit


def pumps_for_list(user):
    """The user's clinics' pumps with patient, model and last refill time in one query."""
    last_refill = RefillVisit.objects.filter(pump=OuterRef("pk")).order_by("-performed_at").values("performed_at")[:1]
    return (
        Pump.objects.for_user(user)
        .select_related("patient", "patient__clinic", "pump_model", "assigned_nurse")
        .annotate(last_refill_at=Subquery(last_refill))
        .order_by("patient__family_name", "patient__given_name", "id")
    )
