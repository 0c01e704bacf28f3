"""Serializers of the JSON API: input validation for writes, output shapes for reads.

Outputs of the selectors (plain dicts) are described here too, so the OpenAPI
schema says exactly what the endpoints return.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from agents.models import Agent
from coordination.models import CoordinationEvent, Decision, Session, Task, Workflow

# --- model outputs -------------------------------------------------------------------


class CurrentTaskSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    title = serializers.CharField()


class AgentSerializer(serializers.ModelSerializer):
    simulated = serializers.BooleanField(source="is_simulated", read_only=True)
    success_rate = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = Agent
        fields = [
            "id",
            "name",
            "role",
            "status",
            "status_reason",
            "session",
            "runtime",
            "runtime_config",
            "simulated",
            "capabilities",
            "concurrency",
            "active_tasks",
            "heartbeat_at",
            "tasks_completed",
            "tasks_failed",
            "success_rate",
            "success_patterns",
            "collaboration_context",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class SessionSerializer(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = Session
        fields = [
            "id",
            "name",
            "goal",
            "workspace",
            "status",
            "team_config",
            "repository",
            "target_branch",
            "verify",
            "slug",
            "created_by",
            "created_at",
            "updated_at",
            "completed_at",
        ]
        read_only_fields = fields


class TaskSerializer(serializers.ModelSerializer):
    class Meta:
        model = Task
        fields = [
            "id",
            "workflow",
            "session",
            "step",
            "role",
            "title",
            "description",
            "status",
            "priority",
            "files",
            "round",
            "attempt",
            "max_attempts",
            "handoff_note",
            "agent",
            "pair_agent",
            "outcome",
            "result",
            "error",
            "human_estimate_hours",
            "tokens_in",
            "tokens_out",
            "cost_usd",
            "simulated",
            "lease_expires_at",
            "not_before",
            "created_at",
            "ready_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class WorkflowSerializer(serializers.ModelSerializer):
    requested_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = Workflow
        fields = [
            "id",
            "session",
            "pattern",
            "title",
            "description",
            "status",
            "priority",
            "files",
            "human_estimate_hours",
            "human_interventions",
            "state",
            "requested_by",
            "source_url",
            "created_at",
            "completed_at",
            "expects_change",
            "branch",
            "base_sha",
            "head_sha",
            "merge_queued_at",
            "delivered_at",
            "merge_commit",
        ]
        read_only_fields = fields


class WorkflowDetailSerializer(WorkflowSerializer):
    tasks = TaskSerializer(many=True, read_only=True)

    class Meta(WorkflowSerializer.Meta):
        fields = [*WorkflowSerializer.Meta.fields, "tasks"]
        read_only_fields = fields


class DecisionOptionSerializer(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()


class DecisionSerializer(serializers.ModelSerializer):
    options = DecisionOptionSerializer(many=True, read_only=True)
    answered_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    task_title = serializers.CharField(source="task.title", read_only=True, allow_null=True, default=None)
    workflow_title = serializers.CharField(source="workflow.title", read_only=True, allow_null=True, default=None)

    class Meta:
        model = Decision
        fields = [
            "id",
            "session",
            "workflow",
            "workflow_title",
            "task",
            "task_title",
            "kind",
            "question",
            "context",
            "options",
            "default_option",
            "deadline",
            "status",
            "answer",
            "comment",
            "answered_by",
            "answered_at",
            "created_at",
        ]
        read_only_fields = fields


class ParticipantSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    role = serializers.CharField()


class EventSerializer(serializers.Serializer):
    """The shape of coordination.events.event_payload(), the one event shape of every client."""

    id = serializers.IntegerField()
    type = serializers.ChoiceField(choices=CoordinationEvent.Type.choices)
    message = serializers.CharField(allow_blank=True)
    session = serializers.IntegerField(allow_null=True)
    workflow = serializers.IntegerField(allow_null=True)
    task = serializers.IntegerField(allow_null=True)
    agent = serializers.IntegerField(allow_null=True)
    participants = ParticipantSerializer(many=True)
    context = serializers.DictField()
    businessImpact = serializers.DictField()
    simulated = serializers.BooleanField()
    actor = serializers.CharField(
        allow_blank=True, help_text="Who made the change: a user name, or the coordinator daemon's name."
    )
    actorToken = serializers.CharField(allow_blank=True, help_text="The API token's name when the actor used one.")
    created_at = serializers.DateTimeField()


class EventPageSerializer(serializers.Serializer):
    results = EventSerializer(many=True)
    after = serializers.IntegerField(help_text="Cursor: the id of the last event in this page (or the one asked).")
    next = serializers.URLField(allow_null=True, help_text="URL of the next page, or null when this page is short.")


# --- outputs of writes -----------------------------------------------------------------------


class TeamSerializer(serializers.Serializer):
    session = SessionSerializer()
    agents = AgentSerializer(many=True)
    workflows = WorkflowSerializer(many=True)


class AgentBulkResultSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    ok = serializers.BooleanField()
    error = serializers.CharField(allow_blank=True)
    agent = AgentSerializer()


class AgentBulkOutputSerializer(serializers.Serializer):
    action = serializers.CharField()
    changed = serializers.IntegerField()
    results = AgentBulkResultSerializer(many=True)


# --- selector outputs (status, health) ------------------------------------------------------


class HealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=[("ok", "ok"), ("degraded", "degraded"), ("down", "down")])
    reasons = serializers.ListField(child=serializers.CharField())


class DaemonSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    hostname = serializers.CharField()
    status = serializers.CharField()
    heartbeat_age_s = serializers.FloatField(allow_null=True)
    alive = serializers.BooleanField()
    leader = serializers.BooleanField()
    tasks_processed = serializers.IntegerField()
    last_tick_ms = serializers.FloatField()
    started_at = serializers.CharField()


class StatusSessionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    status = serializers.CharField()
    goal = serializers.CharField(allow_blank=True)
    workspace = serializers.CharField()
    created_at = serializers.CharField()
    agents = serializers.IntegerField()
    ready = serializers.IntegerField()
    running = serializers.IntegerField()
    blocked = serializers.IntegerField()
    open_decisions = serializers.IntegerField()


class StatusAgentSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    role = serializers.CharField()
    status = serializers.CharField()
    runtime = serializers.CharField()
    simulated = serializers.BooleanField()
    session_id = serializers.IntegerField(allow_null=True)
    current_task = CurrentTaskSerializer(allow_null=True)
    capabilities = serializers.ListField(child=serializers.CharField())
    heartbeat_age_s = serializers.FloatField(allow_null=True)
    active_tasks = serializers.IntegerField()
    concurrency = serializers.IntegerField()
    status_reason = serializers.CharField(allow_blank=True)


@extend_schema_field({"type": "object", "additionalProperties": {"type": "integer"}})
class CountMapField(serializers.DictField):
    child = serializers.IntegerField()


class StatusSerializer(serializers.Serializer):
    generated_at = serializers.CharField()
    health = HealthSerializer()
    daemons = DaemonSerializer(many=True)
    leader_id = serializers.IntegerField(allow_null=True)
    sessions = StatusSessionSerializer(many=True)
    agents_by_role = CountMapField()
    agents_by_status = CountMapField()
    agents_total = serializers.IntegerField()
    agents = StatusAgentSerializer(many=True)
    queue_depth = serializers.IntegerField()
    tasks_in_flight = serializers.IntegerField()
    tasks_blocked = serializers.IntegerField()
    open_decisions = serializers.IntegerField()
    overdue_decisions = serializers.IntegerField()


@extend_schema_field({"type": "object", "additionalProperties": {"type": "string"}})
class TextMapField(serializers.DictField):
    child = serializers.CharField()


class ReadinessSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=[("ok", "ok"), ("failing", "failing")])
    checks = TextMapField()
