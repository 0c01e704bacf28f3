from django.apps import AppConfig


class CoordinationConfig(AppConfig):
    name = "coordination"
    verbose_name = "Coordination"

    def ready(self):
        # Secrets (token secrets, runtime configs' variables, passwords) never reach a log line.
        from agents.redaction import install_log_redaction

        # Sign-in pins each console session's expiry (hive_project.signin's receiver).
        from hive_project import signin  # noqa: F401

        # Each daemon's housekeeping fences dead attempts' processes and runs the merge queue.
        from .services.merge_queue import merge_runner
        from .signals import housekeeping

        housekeeping.connect(merge_runner.on_housekeeping, dispatch_uid="coordination.merge_queue")
        install_log_redaction()
