"""Coordinator daemons: identity, heartbeat, health."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class CoordinatorInstance(models.Model):
    """A running run_coordinator daemon: identity, heartbeat, health."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        STOPPING = "stopping", "Stopping"
        STOPPED = "stopped", "Stopped"
        DEAD = "dead", "Dead (heartbeat lost)"

    name = models.CharField(max_length=200)
    hostname = models.CharField(max_length=200)
    pid = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    concurrency = models.PositiveSmallIntegerField(default=4)
    started_at = models.DateTimeField(default=timezone.now)
    heartbeat_at = models.DateTimeField(default=timezone.now)
    stopped_at = models.DateTimeField(null=True, blank=True)
    tasks_processed = models.PositiveBigIntegerField(default=0)
    last_tick_ms = models.FloatField(default=0)

    class Meta:
        ordering = ["-started_at"]
        indexes = [
            # Health: live daemons by heartbeat.
            models.Index(fields=["status", "heartbeat_at"], name="coordinator_health_idx"),
        ]

    def __str__(self) -> str:
        return self.name
