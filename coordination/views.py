"""The server-rendered operator console.

Views read through selectors and write through services; they never change a
model field themselves. Every page renders its data on the server (first paint
needs no JavaScript); static/js/console.js only adds live updates.
"""

from __future__ import annotations

import json
from functools import wraps
from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.templatetags.static import static
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from agents.models import Agent
from metrics import figures as metrics_figures
from metrics import selectors as metrics_selectors
from metrics.slo import slo_status

from . import console_selectors, selectors, services
from .actors import ACTOR_MAX_LENGTH
from .exceptions import ConflictError, DomainError
from .forms import AGENT_ACTIONS, AgentActionForm, DecisionAnswerForm, SpawnTeamForm, SubmitWorkForm
from .models import CoordinationEvent, Decision, Session
from .permissions import is_operator
from .services.work import DEFAULT_RUNTIME_CONFIG

WINDOW_CHOICES = [("1h", "Last hour"), ("24h", "Last 24 hours"), ("7d", "Last 7 days"), ("all", "All time")]
DEFAULT_WINDOW = "24h"
FEED_LIMIT = 40
EVENT_LOG_LIMIT = 200
SW_SOURCE = Path(settings.BASE_DIR) / "static" / "js" / "sw.js"


def operator_required(view):
    """Signed-in operators only; viewers get 403 (they see everything but change nothing)."""

    @wraps(view)
    @login_required
    def wrapper(request, *args, **kwargs):
        if not is_operator(request.user):
            raise PermissionDenied("Changing coordination state needs operator rights.")
        return view(request, *args, **kwargs)

    return wrapper


def _window(request) -> str:
    window = request.GET.get("window", DEFAULT_WINDOW)
    return window if window in dict(WINDOW_CHOICES) else DEFAULT_WINDOW


def _page(request, template: str, context: dict, *, status: int = 200, nav: str = ""):
    context.setdefault("window", _window(request))
    context.update(
        {
            "nav": nav,
            "is_operator": is_operator(request.user),
            "window_choices": WINDOW_CHOICES,
            "generated_at": timezone.now(),
            "last_event_id": console_selectors.last_event_id(),
            # counted only when the page has not counted them already
            "open_decision_count": (
                context["open_decision_count"]
                if "open_decision_count" in context
                else selectors.open_decisions().count()
            ),
        }
    )
    return render(request, template, context, status=status)


def _json_script_data(value) -> str:
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def _safe_next(request, fallback: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return fallback


def _wants_json(request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


# --- pages ------------------------------------------------------------------------------


@login_required
@require_GET
def overview(request):
    """Crew, figures, charts, decisions and the live feed, in a number of queries fixed whatever the row count.

    The figures are the API's cached ones (metrics.figures): a live refresh recomputes none of them
    while they are fresh. Computed, they take 45 queries (status 7, metrics 14, business value 9,
    series 2, cost 8, ...; "all" 47), see tests/metrics/test_query_counts.py.
    """
    window = _window(request)
    status = selectors.coordination_status()
    # The same cached figures the API serves, so a live refresh does not recompute them.
    coordination = metrics_figures.coordination_metrics(window)
    value = metrics_figures.business_value(window)
    series = metrics_figures.throughput_series(window, buckets=24)
    costs = metrics_figures.cost_by_role(window)
    decisions = list(selectors.open_decisions()[:8])
    sessions = {s["id"]: s for s in status["sessions"]}
    crew = []
    for agent in status["agents"]:
        crew.append({**agent, "session_name": sessions.get(agent["session_id"], {}).get("name", "")})
    charts = {
        "throughput": series,
        "cost_by_role": [
            {
                "role": row["role"],
                "label": dict(Agent.Role.choices).get(row["role"], row["role"]),
                "cost_usd": row["cost_usd"],
                "tokens": row["tokens_in"] + row["tokens_out"],
                "tasks": row["tasks"],
                "simulated_tasks": row["simulated_tasks"],
            }
            for row in costs
        ],
        "window": window,
    }
    context = {
        "status": status,
        "crew": crew,
        "metrics": coordination,
        "value": value,
        "charts": _json_script_data(charts),
        "has_series": any(row["tasks_completed"] or row["failures"] for row in series),
        "costs": costs,
        "decisions": decisions,
        "open_decision_count": status["open_decisions"],
        "feed": console_selectors.recent_events(limit=FEED_LIMIT),
        "socket_path": "/ws/coordination/",
        "slo": slo_status(),
        "assumptions_admin_url": (
            _admin_url("admin:metrics_valueassumptions_changelist") if request.user.is_staff else ""
        ),
    }
    return _page(request, "console/overview.html", context, nav="overview")


def _admin_url(name: str) -> str:
    try:
        return reverse(name)
    except NoReverseMatch:  # the model is not registered in the admin
        return "/admin/"


@login_required
@require_GET
def flow(request):
    session = None
    if request.GET.get("session"):
        session = (
            Session.objects.filter(pk=request.GET["session"]).first() if request.GET["session"].isdigit() else None
        )
        if session is None:
            raise Http404("No such session")
    graph = console_selectors.collaboration_flow(session=session)
    context = {
        "graph": graph,
        "session": session,
        "sessions": console_selectors.session_choices(),
        "socket_path": f"/ws/coordination/sessions/{session.pk}/" if session else "/ws/coordination/",
    }
    return _page(request, "console/flow.html", context, nav="flow")


@login_required
@require_GET
def session_detail(request, pk: int):
    session = get_object_or_404(Session, pk=pk)
    type_filter = request.GET.get("type", "")
    agent_filter = request.GET.get("agent", "")
    agent_id = int(agent_filter) if agent_filter.isdigit() else None
    if type_filter and type_filter not in CoordinationEvent.Type.values:
        type_filter = ""
    actor_filter = request.GET.get("actor", "").strip()[:ACTOR_MAX_LENGTH]
    events = console_selectors.session_events(
        session=session, type=type_filter or None, agent=agent_id, actor=actor_filter or None, limit=EVENT_LOG_LIMIT
    )
    bounds = console_selectors.session_event_bounds(session=session)
    at = _replay_at(request, bounds)
    context = {
        "session": session,
        "timeline": console_selectors.session_timeline(session=session),
        "events": events,
        "event_types": CoordinationEvent.Type.choices,
        "agents": list(session.agents.order_by("role", "name")),
        "type_filter": type_filter,
        "agent_filter": agent_id,
        "actors": console_selectors.session_actors(session=session),
        "actor_filter": actor_filter,
        "bounds": {k: v for k, v in bounds.items() if k != "ids"},
        "replay_ids": bounds["ids"],
        "replay": console_selectors.replay_state(session=session, at=at),
        "replay_at": at,
        "workflows": list(session.workflows.order_by("-created_at")[:50]),
        "decisions": list(selectors.open_decisions(session=session)),
        "socket_path": f"/ws/coordination/sessions/{session.pk}/",
    }
    return _page(request, "console/session.html", context, nav="sessions")


def _replay_at(request, bounds: dict) -> int | None:
    raw = request.GET.get("at", "")
    if raw.isdigit() and bounds["ids"]:
        return max(min(int(raw), bounds["last"]), bounds["first"])
    return bounds["last"]


@login_required
@require_GET
def session_replay(request, pk: int):
    """The crew's state at one event (the replay slider asks for this fragment)."""
    session = get_object_or_404(Session, pk=pk)
    bounds = console_selectors.session_event_bounds(session=session)
    at = _replay_at(request, bounds)
    return render(
        request,
        "console/partials/replay_state.html",
        {"replay": console_selectors.replay_state(session=session, at=at), "session": session},
    )


@login_required
@require_GET
def sessions(request):
    return _page(request, "console/sessions.html", {"sessions": console_selectors.session_list()}, nav="sessions")


@login_required
@require_GET
def agent_detail(request, pk: int):
    agent = get_object_or_404(Agent.objects.select_related("session"), pk=pk)
    window = _window(request)
    context = {
        "agent": agent,
        "performance": metrics_selectors.agent_performance(agent=agent, window=window),
        "history": console_selectors.agent_history(agent=agent),
        "current": console_selectors.agent_current_task(agent=agent),
        "actions": _agent_actions(agent),
        "socket_path": f"/ws/coordination/sessions/{agent.session_id}/" if agent.session_id else "/ws/coordination/",
    }
    return _page(request, "console/agent.html", context, nav="agents")


def _agent_actions(agent: Agent) -> list[dict]:
    paused = agent.status in (Agent.Status.PAUSED, Agent.Status.OFFLINE, Agent.Status.ERROR)
    return [
        {"key": "pause", "label": "Pause", "enabled": not paused, "style": "secondary"},
        {"key": "resume", "label": "Resume", "enabled": paused, "style": "primary"},
        {"key": "restart", "label": "Restart", "enabled": True, "style": "danger"},
    ]


@operator_required
@require_POST
def agent_action(request, pk: int, action: str):
    if action not in AGENT_ACTIONS:
        raise Http404("Unknown action")
    agent = get_object_or_404(Agent, pk=pk)
    form = AgentActionForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    try:
        if action == "pause":
            services.agent_pause(agent=agent, user=request.user, reason=reason)
        elif action == "resume":
            services.agent_resume(agent=agent, user=request.user)
        else:
            services.agent_restart(agent=agent, user=request.user)
    except DomainError as exc:
        if _wants_json(request):
            return JsonResponse({"detail": exc.message, "errors": exc.errors}, status=exc.status_code)
        messages.error(request, f"Could not {action} {agent.name}: {exc.message}")
    else:
        if _wants_json(request):
            return JsonResponse({"ok": True})
        messages.success(request, f"{agent.name}: {action} done.")
    return redirect(_safe_next(request, reverse("console:agent", args=[agent.pk])))


@login_required
@require_GET
def decisions(request):
    context = {
        "decisions": list(selectors.open_decisions()),
        "recent": console_selectors.recent_decisions(limit=15),
        "socket_path": "/ws/coordination/",
    }
    return _page(request, "console/decisions.html", context, nav="decisions")


@operator_required
@require_POST
def decision_answer(request, pk: int):
    decision = get_object_or_404(Decision, pk=pk)
    form = DecisionAnswerForm(request.POST)
    fallback = reverse("console:decisions")
    if not form.is_valid():
        errors = {k: " ".join(v) for k, v in form.errors.items()}
        if _wants_json(request):
            return JsonResponse({"detail": "invalid answer", "errors": errors}, status=400)
        messages.error(request, "Choose one of the options.")
        return redirect(_safe_next(request, fallback))
    try:
        services.decision_answer(
            decision=decision,
            option=form.cleaned_data["option"],
            user=request.user,
            comment=form.cleaned_data["comment"],
        )
    except DomainError as exc:
        if _wants_json(request):
            return JsonResponse({"detail": exc.message, "errors": exc.errors}, status=exc.status_code)
        messages.error(request, f"Not answered: {exc.message}")
    else:
        if _wants_json(request):
            return JsonResponse({"ok": True, "decision": decision.pk, "option": form.cleaned_data["option"]})
        messages.success(request, f"Answered: {decision.question}")
    return redirect(_safe_next(request, fallback))


@login_required
@require_http_methods(["GET", "POST"])
def spawn_team(request):
    if request.method == "POST":
        if not is_operator(request.user):
            raise PermissionDenied("Spawning a team needs operator rights.")
        form = SpawnTeamForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            config = dict(data["runtime_config"])
            if data["runtime"] == "scripted" and not config:
                config = dict(DEFAULT_RUNTIME_CONFIG)  # paced so a person can follow the crew
            members = [
                services.MemberSpec(role=role, runtime=data["runtime"], runtime_config=dict(config))
                for role in data["roles"]
            ]
            try:
                session = services.team_spawn(
                    name=data["name"],
                    goal=data["goal"],
                    workspace=data["workspace"],
                    members=members,
                    user=request.user,
                    repository=data["repository"].strip(),
                    target_branch=data["target_branch"].strip(),
                    verify=data["verify"],
                )
            except DomainError as exc:
                form.add_domain_error(exc)
            else:
                messages.success(request, f"Team “{session.name}” spawned with {len(members)} agents.")
                return redirect("console:session", pk=session.pk)
        status = 400
    else:
        form = SpawnTeamForm()
        status = 200
    return _page(request, "console/spawn.html", {"form": form}, status=status, nav="spawn")


@login_required
@require_http_methods(["GET", "POST"])
def submit_work(request):
    if request.method == "POST":
        if not is_operator(request.user):
            raise PermissionDenied("Submitting work needs operator rights.")
        form = SubmitWorkForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            work = services.WorkSpec(
                title=data["title"],
                description=data["description"],
                pattern=data["pattern"],
                priority=data["priority"],
                estimate_hours=data["estimate_hours"],
                files=data["files"],
                expects_change=data["expects_change"],
            )
            try:
                workflow = services.work_submit(session=data["session"], work=work, user=request.user)
            except (DomainError, ConflictError) as exc:
                form.add_domain_error(exc)
            else:
                messages.success(request, f"Work submitted: “{workflow.title}”.")
                return redirect("console:session", pk=workflow.session_id)
        status = 400
    else:
        initial = {}
        if request.GET.get("session", "").isdigit():
            initial["session"] = int(request.GET["session"])
        form = SubmitWorkForm(initial=initial)
        status = 200
    return _page(request, "console/submit.html", {"form": form}, status=status, nav="submit")


# --- PWA ---------------------------------------------------------------------------------


@require_GET
def service_worker(request):
    """The service worker, served from the site root so its scope covers the whole console."""
    try:
        source = SW_SOURCE.read_text(encoding="utf-8")
    except OSError as exc:  # pragma: no cover - a broken checkout
        raise Http404("service worker missing") from exc
    shell = [
        reverse("console:offline"),
        static("css/console.css"),
        static("js/console.js"),
        static("vendor/chartjs/chart.umd.min.js"),
        static("icons/icon-192.png"),
        static("icons/icon-512.png"),
    ]
    version = str(int(SW_SOURCE.stat().st_mtime))
    body = source.replace("__SHELL__", json.dumps(shell)).replace("__VERSION__", version)
    response = HttpResponse(body, content_type="application/javascript; charset=utf-8")
    response["Service-Worker-Allowed"] = "/"
    response["Cache-Control"] = "no-cache"
    return response


@require_GET
def manifest(request):
    data = {
        "name": "Agent Hive console",
        "short_name": "Agent Hive",
        "description": "Watch and steer a crew of AI development agents, live.",
        "id": "/",
        "start_url": reverse("console:overview"),
        "scope": "/",
        "display": "standalone",
        "background_color": "#0f172a",
        "theme_color": "#1e2952",
        "icons": [
            {"src": static("icons/icon-192.png"), "sizes": "192x192", "type": "image/png", "purpose": "any"},
            {"src": static("icons/icon-512.png"), "sizes": "512x512", "type": "image/png", "purpose": "any"},
            {
                "src": static("icons/icon-maskable-512.png"),
                "sizes": "512x512",
                "type": "image/png",
                "purpose": "maskable",
            },
        ],
    }
    response = JsonResponse(data, content_type="application/manifest+json")
    response["Cache-Control"] = "max-age=3600"
    return response


@never_cache
@require_GET
def offline(request):
    """The offline shell: shows the last overview snapshot the browser kept."""
    return render(request, "console/offline.html", {"generated_at": timezone.now()})
