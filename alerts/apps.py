from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "alerts"
    verbose_name = "Alerts and escalation"

    def ready(self):
        from . import checks, receivers  # noqa: F401
