from django.apps import AppConfig


class CoordinationConfig(AppConfig):
    name = "coordination"
    verbose_name = "Coordination"

    def ready(self):
        # Sign-in pins each console session's expiry (hive_project.signin's receiver).
        from hive_project import signin  # noqa: F401
