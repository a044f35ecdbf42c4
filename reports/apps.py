from django.apps import AppConfig


class ReportsConfig(AppConfig):
    """Aggregate reports for clinic leads: reads clinics, patients and alerts; nothing imports it."""

    name = "reports"
    verbose_name = "Reports"
