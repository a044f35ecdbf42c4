from django.apps import AppConfig


class ClinicsConfig(AppConfig):
    name = "clinics"
    verbose_name = "Clinics and staff"

    def ready(self):
        from . import checks, signals  # noqa: F401
