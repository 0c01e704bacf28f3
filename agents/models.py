"""Agents: the members of a crew and how each really executes work."""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q


class AgentQuerySet(models.QuerySet):
    def available(self) -> AgentQuerySet:
        """Agents that may take another task right now."""
        return self.filter(status__in=[Agent.Status.IDLE, Agent.Status.BUSY], active_tasks__lt=F("concurrency"))

    def stale(self, *, before) -> AgentQuerySet:
        """Working agents whose heartbeat stopped before `before`."""
        return self.filter(status=Agent.Status.BUSY, heartbeat_at__lt=before)


# Tasks one agent may run at once. Serializers, forms, the team file and the admin read the limits
# from Agent; the database enforces them (agent_concurrency_within_limits).
CONCURRENCY_MIN = 1
CONCURRENCY_MAX = 32


class Agent(models.Model):
    CONCURRENCY_MIN = CONCURRENCY_MIN
    CONCURRENCY_MAX = CONCURRENCY_MAX
    NAME_MAX_LENGTH = 100
    CAPABILITY_MAX_LENGTH = 100

    class Role(models.TextChoices):
        PRODUCT_MANAGER = "product_manager", "Product manager"
        ARCHITECT = "architect", "Architect"
        DEVELOPER = "developer", "Developer"
        TESTER = "tester", "Tester"
        DEVOPS = "devops", "DevOps"
        REVIEWER = "reviewer", "Reviewer"

    class Status(models.TextChoices):
        IDLE = "idle", "Idle"
        BUSY = "busy", "Busy"
        PAUSED = "paused", "Paused"
        OFFLINE = "offline", "Offline"
        ERROR = "error", "Error"

    class Runtime(models.TextChoices):
        COMMAND = "command", "Command (real program)"
        LLM = "llm", "LLM (chat completions)"
        SCRIPTED = "scripted", "Scripted (simulated)"

    name = models.CharField(max_length=NAME_MAX_LENGTH)
    role = models.CharField(max_length=32, choices=Role.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.IDLE)
    session = models.ForeignKey(
        "coordination.Session", null=True, blank=True, on_delete=models.SET_NULL, related_name="agents"
    )
    runtime = models.CharField(max_length=16, choices=Runtime.choices, default=Runtime.SCRIPTED)
    runtime_config = models.JSONField(default=dict, blank=True)
    capabilities = models.JSONField(default=list, blank=True)
    concurrency = models.PositiveSmallIntegerField(default=1)
    active_tasks = models.PositiveIntegerField(default=0, editable=False)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    status_reason = models.CharField(max_length=300, blank=True)
    # What the agent knows about its current collaboration (partner, handoff notes).
    collaboration_context = models.JSONField(default=dict, blank=True)
    # Track record earned from completed work, used when matching tasks.
    success_patterns = models.JSONField(default=dict, blank=True)
    tasks_completed = models.PositiveIntegerField(default=0, editable=False)
    tasks_failed = models.PositiveIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = AgentQuerySet.as_manager()

    class Meta:
        ordering = ["session_id", "role", "name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(active_tasks__lte=F("concurrency")), name="agent_load_within_concurrency"
            ),
            models.CheckConstraint(
                condition=Q(concurrency__gte=CONCURRENCY_MIN, concurrency__lte=CONCURRENCY_MAX),
                name="agent_concurrency_within_limits",
            ),
            models.UniqueConstraint(fields=["session", "name"], name="agent_name_unique_per_session"),
        ]
        indexes = [
            # Matching: idle agents of a role in a session.
            models.Index(fields=["session", "role", "status"], name="agent_match_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_role_display()})"

    @property
    def is_simulated(self) -> bool:
        """Scripted agents, and command agents whose config says they are scripted stand-ins."""
        if self.runtime == self.Runtime.SCRIPTED:
            return True
        config = self.runtime_config if isinstance(self.runtime_config, dict) else {}
        return self.runtime == self.Runtime.COMMAND and config.get("simulated") is True

    @property
    def success_rate(self) -> float | None:
        done = self.tasks_completed + self.tasks_failed
        return self.tasks_completed / done if done else None
