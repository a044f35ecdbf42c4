from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, render

from clinics.access import log_access
from clinics.models import AccessLog

from .models import Patient
from .selectors import pumps_for_list


def home(request):
    """The user's clinics' pumps with their patient, last refill and reservoir size."""
    page = Paginator(pumps_for_list(request.user), 50).get_page(request.GET.get("page"))
    return render(request, "patients/home.html", {"page": page})


def patient_detail(request, pk):
    patient = get_object_or_404(Patient.objects.for_user(request.user).select_related("clinic"), pk=pk)
    log_access(request.user, AccessLog.Action.VIEW, patient)
    pumps = patient.pumps.select_related("pump_model", "assigned_nurse").prefetch_related("refills")
    return render(request, "patients/patient_detail.html", {"patient": patient, "pumps": pumps})
