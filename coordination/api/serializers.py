"""Serializers of the JSON API: input validation for writes, output shapes for reads.

Outputs of the selectors (plain dicts) are described here too, so the OpenAPI
schema says exactly what the endpoints return.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from agents.models import Agent
from coordination import patterns
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
    created_at = serializers.DateTimeField()


class EventPageSerializer(serializers.Serializer):
    results = EventSerializer(many=True)
    after = serializers.IntegerField(help_text="Cursor: the id of the last event in this page (or the one asked).")
    next = serializers.URLField(allow_null=True, help_text="URL of the next page, or null when this page is short.")


# --- inputs ----------------------------------------------------------------------------------


class MemberInputSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Agent.Role.choices)
    name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    runtime = serializers.ChoiceField(choices=Agent.Runtime.choices, default=Agent.Runtime.SCRIPTED)
    runtime_config = serializers.DictField(required=False, default=dict)
    capabilities = serializers.ListField(child=serializers.CharField(max_length=100), required=False, default=list)
    concurrency = serializers.IntegerField(min_value=1, max_value=32, default=1)


class WorkInputSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    pattern = serializers.ChoiceField(choices=patterns.PATTERN_CHOICES, default=patterns.FEATURE_DELIVERY.key)
    priority = serializers.IntegerField(min_value=-100, max_value=100, default=0)
    estimate_hours = serializers.DecimalField(
        max_digits=8, decimal_places=2, min_value=0, max_value=10000, required=False, allow_null=True, default=None
    )
    files = serializers.ListField(child=serializers.CharField(max_length=500), required=False, default=list)


class SpawnInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120)
    goal = serializers.CharField(required=False, allow_blank=True, default="")
    workspace = serializers.CharField(
        max_length=500,
        required=False,
        allow_blank=True,
        default="",
        help_text="Absolute directory; empty for a fresh one under HIVE_WORKSPACE_ROOT.",
    )
    members = MemberInputSerializer(
        many=True, required=False, help_text="Default: one scripted (simulated) agent per role."
    )
    backlog = WorkInputSerializer(many=True, required=False, default=list)

    def validate_members(self, value):
        if not value:
            raise serializers.ValidationError("a team needs at least one member")
        if len(value) > 64:
            raise serializers.ValidationError("at most 64 members")
        return value

    def validate_backlog(self, value):
        if len(value) > 50:
            raise serializers.ValidationError("at most 50 items")
        return value


class TeamSerializer(serializers.Serializer):
    session = SessionSerializer()
    agents = AgentSerializer(many=True)
    workflows = WorkflowSerializer(many=True)


class SubmitWorkInputSerializer(WorkInputSerializer):
    session = serializers.PrimaryKeyRelatedField(queryset=Session.objects.all())


class AgentCreateInputSerializer(serializers.Serializer):
    session = serializers.PrimaryKeyRelatedField(queryset=Session.objects.all())
    role = serializers.ChoiceField(choices=Agent.Role.choices)
    name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    runtime = serializers.ChoiceField(choices=Agent.Runtime.choices, default=Agent.Runtime.SCRIPTED)
    runtime_config = serializers.DictField(required=False, default=dict)
    capabilities = serializers.ListField(child=serializers.CharField(max_length=100), required=False, default=list)
    concurrency = serializers.IntegerField(min_value=1, max_value=32, default=1)


class AgentUpdateInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False)
    runtime = serializers.ChoiceField(choices=Agent.Runtime.choices, required=False)
    runtime_config = serializers.DictField(required=False)
    capabilities = serializers.ListField(child=serializers.CharField(max_length=100), required=False)
    concurrency = serializers.IntegerField(min_value=1, max_value=32, required=False)

    def validate_name(self, value):
        value = value.strip()
        if not value:
            raise serializers.ValidationError("may not be blank")
        return value


class ReasonInputSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")


BULK_ACTIONS = ("pause", "resume", "restart")


class AgentBulkInputSerializer(serializers.Serializer):
    ids = serializers.ListField(child=serializers.IntegerField(min_value=1), min_length=1, max_length=500)
    action = serializers.ChoiceField(choices=[(a, a) for a in BULK_ACTIONS])
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")


class AgentBulkResultSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    ok = serializers.BooleanField()
    error = serializers.CharField(allow_blank=True)
    agent = AgentSerializer()


class AgentBulkOutputSerializer(serializers.Serializer):
    action = serializers.CharField()
    changed = serializers.IntegerField()
    results = AgentBulkResultSerializer(many=True)


class DecisionAnswerInputSerializer(serializers.Serializer):
    option = serializers.CharField(max_length=40)
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=4000)


class WindowQuerySerializer(serializers.Serializer):
    window = serializers.ChoiceField(
        choices=[("1h", "1h"), ("24h", "24h"), ("7d", "7d"), ("all", "all")], default="24h"
    )


# --- selector outputs (status, metrics, value) ------------------------------------------------------


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


class PercentilesSerializer(serializers.Serializer):
    p50 = serializers.FloatField(allow_null=True, help_text="seconds")
    p95 = serializers.FloatField(allow_null=True, help_text="seconds")
    count = serializers.IntegerField()


class CycleTimeSerializer(serializers.Serializer):
    workflow = PercentilesSerializer()
    task = PercentilesSerializer()


class ThroughputSerializer(serializers.Serializer):
    tasks_completed = serializers.IntegerField()
    tasks_failed = serializers.IntegerField()
    tasks_cancelled = serializers.IntegerField()
    workflows_completed = serializers.IntegerField()
    tasks_per_hour = serializers.FloatField(allow_null=True)
    workflows_per_hour = serializers.FloatField(allow_null=True)


class UtilisationSerializer(serializers.Serializer):
    role = serializers.CharField()
    agents = serializers.IntegerField()
    busy_seconds = serializers.FloatField()
    utilisation = serializers.FloatField(allow_null=True)


MONEY = {"max_digits": 20, "decimal_places": 6}
MONEY_2 = {"max_digits": 20, "decimal_places": 2}


class RoleCostSerializer(serializers.Serializer):
    role = serializers.CharField()
    tokens_in = serializers.IntegerField()
    tokens_out = serializers.IntegerField()
    cost_usd = serializers.DecimalField(**MONEY)
    tasks_completed = serializers.IntegerField()


class AgentCostSerializer(RoleCostSerializer):
    agent_id = serializers.IntegerField()
    name = serializers.CharField()
    runtime = serializers.CharField()
    simulated = serializers.BooleanField()


class TotalsSerializer(serializers.Serializer):
    tokens_in = serializers.IntegerField()
    tokens_out = serializers.IntegerField()
    cost_usd = serializers.DecimalField(**MONEY)


class HumanWaitSerializer(PercentilesSerializer):
    decisions = serializers.IntegerField()
    total_seconds = serializers.FloatField()


class PatternCountSerializer(serializers.Serializer):
    pattern = serializers.CharField()
    status = serializers.CharField()
    count = serializers.IntegerField()


class SimulatedShareSerializer(serializers.Serializer):
    tasks_completed = serializers.FloatField(allow_null=True)
    estimate_hours = serializers.FloatField(allow_null=True)
    busy_time = serializers.FloatField(allow_null=True)
    simulated_tasks_completed = serializers.IntegerField()
    note = serializers.CharField()


@extend_schema_field({"type": "object", "additionalProperties": {"type": "string"}})
class TextMapField(serializers.DictField):
    child = serializers.CharField()


class MetricsSerializer(serializers.Serializer):
    window = serializers.CharField()
    start = serializers.CharField(allow_null=True)
    end = serializers.CharField()
    span_hours = serializers.FloatField()
    throughput = ThroughputSerializer()
    coordination_success_rate = serializers.FloatField(allow_null=True)
    workflows_finished = serializers.IntegerField()
    workflows_completed_unaided = serializers.IntegerField()
    cycle_time = CycleTimeSerializer()
    handoff_latency = PercentilesSerializer()
    review_rounds_per_change = serializers.FloatField(allow_null=True)
    rework_rate = serializers.FloatField(allow_null=True)
    utilisation_by_role = UtilisationSerializer(many=True)
    tokens_cost_by_role = RoleCostSerializer(many=True)
    tokens_cost_by_agent = AgentCostSerializer(many=True)
    totals = TotalsSerializer()
    human_wait = HumanWaitSerializer()
    patterns = PatternCountSerializer(many=True)
    simulated_share = SimulatedShareSerializer()
    definitions = TextMapField()


class ValueInputsSerializer(serializers.Serializer):
    human_estimate_hours = serializers.DecimalField(**MONEY_2)
    tasks_completed = serializers.IntegerField()
    decisions_answered = serializers.IntegerField()
    crew_seconds = serializers.FloatField()
    cost_usd = serializers.DecimalField(**MONEY)
    span_hours = serializers.DecimalField(**MONEY_2)
    first_started = serializers.CharField(allow_null=True)
    last_finished = serializers.CharField(allow_null=True)


class AssumptionsSerializer(serializers.Serializer):
    currency = serializers.CharField()
    hourly_rate = serializers.DecimalField(**MONEY_2)
    working_hours_per_year = serializers.IntegerField()
    team_size = serializers.IntegerField()
    human_review_minutes_per_decision = serializers.IntegerField()
    updated_at = serializers.CharField(allow_null=True)


class BusinessValueSerializer(serializers.Serializer):
    window = serializers.CharField()
    start = serializers.CharField(allow_null=True)
    end = serializers.CharField()
    currency = serializers.CharField()
    hours_saved = serializers.DecimalField(**MONEY_2)
    crew_hours = serializers.DecimalField(**MONEY_2)
    human_hours_spent = serializers.DecimalField(**MONEY_2)
    productivity_gain = serializers.FloatField(allow_null=True)
    cost_usd = serializers.DecimalField(**MONEY_2)
    value = serializers.DecimalField(**MONEY_2)
    net_value = serializers.DecimalField(**MONEY_2)
    annualised_value_per_developer = serializers.DecimalField(**MONEY_2, allow_null=True)
    inputs = ValueInputsSerializer()
    assumptions = AssumptionsSerializer()
    formulas = TextMapField()
    simulated_share = SimulatedShareSerializer()


class RecentTaskSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    title = serializers.CharField()
    step = serializers.CharField()
    status = serializers.CharField()
    outcome = serializers.CharField(allow_blank=True)
    started_at = serializers.CharField(allow_null=True)
    finished_at = serializers.CharField(allow_null=True)
    cost_usd = serializers.DecimalField(**MONEY)


class AgentPerformanceSerializer(serializers.Serializer):
    agent_id = serializers.IntegerField()
    name = serializers.CharField()
    role = serializers.CharField()
    runtime = serializers.CharField()
    simulated = serializers.BooleanField()
    window = serializers.CharField()
    completed = serializers.IntegerField()
    failed = serializers.IntegerField()
    success_rate = serializers.FloatField(allow_null=True)
    utilisation = serializers.FloatField(allow_null=True)
    busy_seconds = serializers.FloatField()
    tokens_in = serializers.IntegerField()
    tokens_out = serializers.IntegerField()
    cost_usd = serializers.DecimalField(**MONEY)
    avg_duration_seconds = serializers.FloatField(allow_null=True)
    recent_tasks = RecentTaskSerializer(many=True)


class ReadinessSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=[("ok", "ok"), ("failing", "failing")])
    checks = TextMapField()
