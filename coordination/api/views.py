"""JSON API views: thin wrappers that validate input, call a service or a selector, serialize.

Reads need a signed-in user (session or token); writes need operator rights
(coordination.permissions.IsOperatorOrReadOnly, the project default).
"""

from __future__ import annotations

from django.db.models import Prefetch
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils.http import urlencode
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import exceptions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.filters import OrderingFilter
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents.models import Agent
from coordination import inputs, selectors, services, teamfile
from coordination.events import event_payload
from coordination.exceptions import CursorExpired, DomainError
from coordination.models import CoordinationEvent, Decision, Session, Task, Workflow
from coordination.services.agents_api import agent_create, session_transition

from . import filters
from . import serializers as s
from .cache import cached_read
from .common import READ_ERRORS, errors, validated
from .pagination import HivePagination


class ReadViewSet(viewsets.ReadOnlyModelViewSet):
    """List and detail; query-string filters and ordering apply to the list only."""

    pagination_class = HivePagination
    filter_backends = [filters.StrictFilterBackend, OrderingFilter]
    # Any path segment reaches the view, so a malformed id is a JSON 404 like a missing one.
    lookup_value_regex = "[^/]+"

    def filter_queryset(self, queryset):
        return super().filter_queryset(queryset) if self.action == "list" else queryset


# --- coordination ------------------------------------------------------------------------


class CoordinationStatusView(APIView):
    @extend_schema(responses={200: s.StatusSerializer, **READ_ERRORS}, tags=["coordination"])
    def get(self, request: Request) -> Response:
        """Daemons, sessions, agents, queue depth, open decisions and overall health."""
        return Response(cached_read("status", selectors.coordination_status))


def team_payload(session: Session) -> dict:
    agents = list(Agent.objects.filter(session=session).order_by("role", "name"))
    workflows = list(Workflow.objects.filter(session=session).order_by("id"))
    return s.TeamSerializer({"session": session, "agents": agents, "workflows": workflows}).data


class CoordinationSpawnView(APIView):
    @extend_schema(
        request=inputs.SpawnInputSerializer,
        responses={201: s.TeamSerializer, **errors(400, 401, 403)},
        tags=["coordination"],
    )
    def post(self, request: Request) -> Response:
        """Spawn a team into a new session (default: one scripted agent per role), with an optional backlog.

        An empty body (or `{}`) spawns the configured default team: the team file named by
        HIVE_TEAM_CONFIG, else "Default team" with one scripted agent per role.
        """
        if isinstance(request.data, dict) and not request.data:
            session = teamfile.team_spawn_from_config(teamfile.default_team_config(), user=request.user)
            return Response(team_payload(session), status=status.HTTP_201_CREATED)
        data = validated(inputs.SpawnInputSerializer, request.data)
        members = data.get("members")
        session = services.team_spawn(
            name=data["name"],
            goal=data["goal"],
            workspace=data["workspace"],
            members=None if members is None else [services.MemberSpec(**member) for member in members],
            backlog=[services.WorkSpec(**work) for work in data["backlog"]],
            user=request.user,
            repository=data["repository"],
            target_branch=data["target_branch"],
            verify=data["verify"],
        )
        return Response(team_payload(session), status=status.HTTP_201_CREATED)


# --- agents ---------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(responses={200: s.AgentSerializer(many=True), **errors(400, 401, 403)}),
    retrieve=extend_schema(responses={200: s.AgentSerializer, **errors(401, 403, 404)}),
)
@extend_schema(tags=["agents"])
class AgentViewSet(ReadViewSet):
    queryset = Agent.objects.all()
    serializer_class = s.AgentSerializer
    filterset_class = filters.AgentFilter
    ordering_fields = ["id", "name", "role", "status", "created_at", "tasks_completed"]
    ordering = ["id"]

    @extend_schema(
        request=inputs.AgentCreateInputSerializer,
        responses={201: s.AgentSerializer, **errors(400, 401, 403, 404, 409)},
    )
    def create(self, request: Request) -> Response:
        """Add an agent to a session's team."""
        data = dict(validated(inputs.AgentCreateInputSerializer, request.data))
        session = get_object_or_404(Session, pk=data.pop("session"))
        agent = agent_create(session=session, **data, user=request.user)
        return Response(s.AgentSerializer(agent).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=inputs.AgentUpdateInputSerializer, responses={200: s.AgentSerializer, **errors(400, 401, 403, 404, 409)}
    )
    def partial_update(self, request: Request, pk=None) -> Response:
        """Change an agent's name, runtime, runtime config, capabilities or concurrency."""
        agent = self.get_object()
        changes = validated(inputs.AgentUpdateInputSerializer, request.data)
        if not changes:
            raise DomainError("send at least one of: name, runtime, runtime_config, capabilities, concurrency")
        agent = services.agent_update(agent=agent, user=request.user, **changes)
        return Response(s.AgentSerializer(agent).data)

    @extend_schema(
        request=inputs.ReasonInputSerializer, responses={200: s.AgentSerializer, **errors(400, 401, 403, 404, 409)}
    )
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk=None) -> Response:
        """Stop giving the agent new work; what it runs now finishes."""
        reason = validated(inputs.ReasonInputSerializer, request.data)["reason"]
        agent = services.agent_pause(agent=self.get_object(), user=request.user, reason=reason)
        return Response(s.AgentSerializer(agent).data)

    @extend_schema(request=None, responses={200: s.AgentSerializer, **errors(401, 403, 404, 409)})
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk=None) -> Response:
        """Give a paused (or offline) agent work again."""
        agent = services.agent_resume(agent=self.get_object(), user=request.user)
        return Response(s.AgentSerializer(agent).data)

    @extend_schema(request=None, responses={200: s.AgentSerializer, **errors(401, 403, 404)})
    @action(detail=True, methods=["post"])
    def restart(self, request: Request, pk=None) -> Response:
        """Hand the agent's running tasks back to the queue and bring it back idle."""
        agent = services.agent_restart(agent=self.get_object(), user=request.user)
        return Response(s.AgentSerializer(agent).data)

    @extend_schema(
        request=inputs.AgentBulkInputSerializer,
        responses={200: s.AgentBulkOutputSerializer, **errors(400, 401, 403, 404)},
    )
    @action(detail=False, methods=["post"])
    def bulk(self, request: Request) -> Response:
        """Pause, resume or restart many agents; each agent's result is reported (a conflict is not fatal)."""
        data = validated(inputs.AgentBulkInputSerializer, request.data)
        ids = list(dict.fromkeys(data["ids"]))
        agents = {a.pk: a for a in Agent.objects.filter(pk__in=ids)}
        missing = [i for i in ids if i not in agents]
        if missing:
            raise exceptions.NotFound(f"no agent with id {', '.join(map(str, missing))}")
        results = []
        for agent_id in ids:
            agent = agents[agent_id]
            try:
                if data["action"] == "pause":
                    agent = services.agent_pause(agent=agent, user=request.user, reason=data["reason"])
                elif data["action"] == "resume":
                    agent = services.agent_resume(agent=agent, user=request.user)
                else:
                    agent = services.agent_restart(agent=agent, user=request.user)
                results.append({"id": agent_id, "ok": True, "error": "", "agent": agent})
            except DomainError as exc:
                agent.refresh_from_db()
                results.append({"id": agent_id, "ok": False, "error": exc.message, "agent": agent})
        payload = {"action": data["action"], "changed": sum(r["ok"] for r in results), "results": results}
        return Response(s.AgentBulkOutputSerializer(payload).data)


# --- sessions -------------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(responses={200: s.SessionSerializer(many=True), **errors(400, 401, 403)}),
    retrieve=extend_schema(responses={200: s.SessionSerializer, **errors(401, 403, 404)}),
)
@extend_schema(tags=["sessions"])
class SessionViewSet(ReadViewSet):
    queryset = Session.objects.select_related("created_by")
    serializer_class = s.SessionSerializer
    filterset_class = filters.SessionFilter
    ordering_fields = ["id", "name", "status", "created_at"]
    ordering = ["-created_at", "-id"]

    def _transition(self, request: Request, action_name: str) -> Response:
        session = session_transition(session=self.get_object(), action=action_name, user=request.user)
        return Response(s.SessionSerializer(session).data)

    @extend_schema(request=None, responses={200: s.SessionSerializer, **errors(401, 403, 404, 409)})
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk=None) -> Response:
        """Pause an active session: its agents take no new work."""
        return self._transition(request, "pause")

    @extend_schema(request=None, responses={200: s.SessionSerializer, **errors(401, 403, 404, 409)})
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk=None) -> Response:
        """Resume a paused session."""
        return self._transition(request, "resume")

    @extend_schema(request=None, responses={200: s.SessionSerializer, **errors(401, 403, 404, 409)})
    @action(detail=True, methods=["post"])
    def complete(self, request: Request, pk=None) -> Response:
        """Close an active or paused session."""
        return self._transition(request, "complete")


# --- workflows and tasks ----------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(responses={200: s.WorkflowSerializer(many=True), **errors(400, 401, 403)}),
    retrieve=extend_schema(responses={200: s.WorkflowDetailSerializer, **errors(401, 403, 404)}),
)
@extend_schema(tags=["workflows"])
class WorkflowViewSet(ReadViewSet):
    queryset = Workflow.objects.select_related("requested_by")
    filterset_class = filters.WorkflowFilter
    ordering_fields = ["id", "created_at", "completed_at", "priority", "status"]
    ordering = ["-created_at", "-id"]

    def get_queryset(self):
        queryset = super().get_queryset()
        if self.action == "retrieve":
            queryset = queryset.prefetch_related(Prefetch("tasks", queryset=Task.objects.order_by("id")))
        return queryset

    def get_serializer_class(self):
        return s.WorkflowDetailSerializer if self.action == "retrieve" else s.WorkflowSerializer


def workflow_detail(workflow: Workflow) -> dict:
    workflow = (
        Workflow.objects.select_related("requested_by")
        .prefetch_related(Prefetch("tasks", queryset=Task.objects.order_by("id")))
        .get(pk=workflow.pk)
    )
    return s.WorkflowDetailSerializer(workflow).data


@extend_schema_view(
    list=extend_schema(responses={200: s.TaskSerializer(many=True), **errors(400, 401, 403)}),
    retrieve=extend_schema(responses={200: s.TaskSerializer, **errors(401, 403, 404)}),
)
@extend_schema(tags=["tasks"])
class TaskViewSet(ReadViewSet):
    queryset = Task.objects.all()
    serializer_class = s.TaskSerializer
    filterset_class = filters.TaskFilter
    ordering_fields = ["id", "priority", "created_at", "started_at", "finished_at", "status"]
    ordering = ["-id"]

    @extend_schema(
        request=inputs.SubmitWorkInputSerializer,
        responses={201: s.WorkflowDetailSerializer, **errors(400, 401, 403, 404, 409)},
    )
    def create(self, request: Request) -> Response:
        """Submit work: start a workflow of the chosen pattern; its first task is ready at once."""
        data = dict(validated(inputs.SubmitWorkInputSerializer, request.data))
        session = get_object_or_404(Session, pk=data.pop("session"))
        workflow = services.work_submit(session=session, work=services.WorkSpec(**data), user=request.user)
        return Response(workflow_detail(workflow), status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: s.TaskSerializer, **errors(401, 403, 404, 409)})
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk=None) -> Response:
        """Queue a failed, blocked or cancelled task again with fresh attempts."""
        task = services.task_retry(task=self.get_object(), user=request.user)
        task.refresh_from_db()
        return Response(s.TaskSerializer(task).data)

    @extend_schema(
        request=inputs.ReasonInputSerializer, responses={200: s.TaskSerializer, **errors(400, 401, 403, 404, 409)}
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk=None) -> Response:
        """Cancel an unfinished task and its workflow."""
        reason = validated(inputs.ReasonInputSerializer, request.data)["reason"]
        task = services.task_cancel(task=self.get_object(), user=request.user, reason=reason)
        task.refresh_from_db()
        return Response(s.TaskSerializer(task).data)


# --- events -----------------------------------------------------------------------------------------


class EventQuerySerializer(serializers.Serializer):
    after = serializers.IntegerField(
        min_value=0,
        default=0,
        help_text="Cursor: return events with a larger id (0 = from the oldest kept). A cursor below the "
        "retention horizon is a 410 `cursor_expired` naming `pruned_through` and `oldest_kept_id`.",
    )
    session = serializers.IntegerField(min_value=0, required=False)
    type = serializers.ListField(
        child=serializers.ChoiceField(choices=CoordinationEvent.Type.choices),
        required=False,
        allow_empty=True,
        help_text="Event types; repeat the parameter or separate with commas.",
    )
    agent = serializers.IntegerField(min_value=0, required=False)
    actor = serializers.CharField(
        max_length=150,
        required=False,
        help_text="Who made the change: a user name (whatever token they used) or a coordinator daemon's name.",
    )
    since = serializers.DateTimeField(required=False, help_text="created_at >= since")
    until = serializers.DateTimeField(required=False, help_text="created_at < until")
    limit = serializers.IntegerField(
        min_value=1, max_value=selectors.EVENT_LIMIT_MAX, default=100, help_text="Page size."
    )

    def to_internal_value(self, data):
        if hasattr(data, "getlist"):
            plain = {key: data.get(key) for key in data if key != "type"}
            types = [t for value in data.getlist("type") for t in value.split(",") if t]
            if types:
                plain["type"] = types
            data = plain
        return super().to_internal_value(data)


class EventListView(APIView):
    @extend_schema(
        parameters=[EventQuerySerializer],
        responses={200: s.EventPageSerializer, **errors(400, 401, 403), 410: OpenApiTypes.OBJECT},
        tags=["events"],
    )
    def get(self, request: Request) -> Response:
        """Events in ascending id after a cursor; follow `next` until it is null to read each event once."""
        query = validated(EventQuerySerializer, request.query_params)
        events = selectors.events_after(
            after=query["after"],
            session=query.get("session"),
            types=query.get("type"),
            agent=query.get("agent"),
            actor=query.get("actor"),
            since=query.get("since"),
            until=query.get("until"),
            limit=query["limit"],
        )
        # Read after the page, so a prune that committed meanwhile is seen. A page that starts
        # right after the cursor cannot have lost anything (retention removes the oldest ids first).
        if not events or events[0].pk != query["after"] + 1:
            expired = selectors.cursor_expired(after=query["after"])
            if expired is not None:
                raise CursorExpired(
                    expired["detail"],
                    field="after",
                    extra={"pruned_through": expired["pruned_through"], "oldest_kept_id": expired["oldest_kept_id"]},
                )
        last = events[-1].pk if events else query["after"]
        next_url = None
        if len(events) == query["limit"]:
            params = {k: v for k, v in request.query_params.items() if k != "after"}
            params["after"] = last
            next_url = request.build_absolute_uri(f"{reverse('api:events')}?{urlencode(params)}")
        return Response({"results": [event_payload(e) for e in events], "after": last, "next": next_url})


# --- decisions --------------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(responses={200: s.DecisionSerializer(many=True), **errors(400, 401, 403)}),
    retrieve=extend_schema(responses={200: s.DecisionSerializer, **errors(401, 403, 404)}),
)
@extend_schema(tags=["decisions"])
class DecisionViewSet(ReadViewSet):
    queryset = Decision.objects.select_related("workflow", "task", "answered_by")
    serializer_class = s.DecisionSerializer
    filterset_class = filters.DecisionFilter
    ordering_fields = ["id", "deadline", "created_at", "answered_at"]
    ordering = ["deadline", "id"]

    @extend_schema(
        request=inputs.DecisionAnswerInputSerializer,
        responses={200: s.DecisionSerializer, **errors(400, 401, 403, 404, 409)},
    )
    @action(detail=True, methods=["post"])
    def answer(self, request: Request, pk=None) -> Response:
        """Answer an open decision with one of its options; the blocked task moves on. A second answer is 409."""
        decision = self.get_object()
        data = validated(inputs.DecisionAnswerInputSerializer, request.data)
        services.decision_answer(decision=decision, option=data["option"], comment=data["comment"], user=request.user)
        return Response(s.DecisionSerializer(self.get_queryset().get(pk=decision.pk)).data)
