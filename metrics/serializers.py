"""Serializers of the metric, business-value and validation-run endpoints: the window query and the figures' shapes.

The selectors return plain dicts; these describe them so the OpenAPI schema says
exactly what the endpoints return.
"""

from __future__ import annotations

from rest_framework import serializers

from coordination.api.serializers import TextMapField

from .models import ValidationRun
from .selectors import WINDOWS
from .validation.records import MAX_CONSOLE_MINUTES, SANDBOX_FAULTS

DEFAULT_WINDOW = "24h"


class WindowQuerySerializer(serializers.Serializer):
    window = serializers.ChoiceField(choices=[(w, w) for w in WINDOWS], default=DEFAULT_WINDOW)


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
    attempts_failed = serializers.IntegerField(help_text="attempts that failed or were reclaimed")
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


class SuccessSerializer(serializers.Serializer):
    succeeded = serializers.IntegerField(help_text="attempts that succeeded")
    failed = serializers.IntegerField(help_text="attempts that failed or were reclaimed")
    success_rate = serializers.FloatField(allow_null=True, help_text="succeeded / (succeeded + failed)")


class RoleSuccessSerializer(SuccessSerializer):
    role = serializers.CharField()


class AgentSuccessSerializer(RoleSuccessSerializer):
    agent_id = serializers.IntegerField()
    name = serializers.CharField()


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


class MetricsSerializer(serializers.Serializer):
    window = serializers.CharField()
    start = serializers.CharField(allow_null=True)
    end = serializers.CharField()
    span_hours = serializers.FloatField()
    throughput = ThroughputSerializer()
    coordination_success_rate = serializers.FloatField(allow_null=True)
    attempt_success = SuccessSerializer()
    success_by_role = RoleSuccessSerializer(many=True)
    success_by_agent = AgentSuccessSerializer(many=True)
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
    human_estimate_hours = serializers.DecimalField(
        **MONEY_2, help_text="Σ estimate of the workflows delivered in the window, each once"
    )
    workflows_delivered = serializers.IntegerField()
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
    attempts_succeeded = serializers.IntegerField()
    failed = serializers.IntegerField(help_text="attempts that failed or were reclaimed")
    success_rate = serializers.FloatField(allow_null=True, help_text="succeeded / (succeeded + failed) attempts")
    utilisation = serializers.FloatField(allow_null=True)
    busy_seconds = serializers.FloatField()
    tokens_in = serializers.IntegerField()
    tokens_out = serializers.IntegerField()
    cost_usd = serializers.DecimalField(**MONEY)
    avg_duration_seconds = serializers.FloatField(allow_null=True)
    recent_tasks = RecentTaskSerializer(many=True)


# --- validation runs ------------------------------------------------------------------------


class ValidationRunSerializer(serializers.ModelSerializer):
    started_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = ValidationRun
        fields = [
            "id",
            "status",
            "sandbox",
            "crew",
            "faults",
            "options",
            "figures",
            "failed_checks",
            "progress",
            "error",
            "command",
            "started_by",
            "started_at",
            "heartbeat_at",
            "finished_at",
        ]
        read_only_fields = fields


class ValidationStartSerializer(serializers.Serializer):
    """A sandbox run started by an operator (API and console)."""

    minutes = serializers.FloatField(
        min_value=0.1, max_value=MAX_CONSOLE_MINUTES, default=2.0, help_text="How long work is submitted."
    )
    faults = serializers.ListField(
        child=serializers.ChoiceField(choices=SANDBOX_FAULTS),
        default=list,
        max_length=len(SANDBOX_FAULTS),
        help_text="Faults to inject; db needs PostgreSQL and runs only from the command line.",
    )
    workflows = serializers.IntegerField(min_value=0, max_value=1000, default=0, help_text="0: as many as fit.")
