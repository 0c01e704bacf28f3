from django.apps import AppConfig


class MetricsConfig(AppConfig):
    name = "metrics"
    verbose_name = "Metrics and business value"

    def ready(self) -> None:
        # The daemons judge the coordination objective in their housekeeping; coordination
        # sends the signal without knowing who listens.
        from coordination.signals import housekeeping

        from .slo import slo_on_housekeeping

        housekeeping.connect(slo_on_housekeeping, dispatch_uid="metrics.slo_evaluate")
