"""Operator actions over the event socket: the same services and checks as the API's POSTs.

A client sends `{"type": "agent.pause", "agent": 3, "reason": "…", "ref": "any"}` (or
`agent.resume`, `agent.restart`, `decision.answer` with `decision`, `option`, `comment`) and
gets one answer carrying its `ref`:

- `{"type": "result", "action": …, "ref": …, "status": 200, "data": {…}}` with the agent or
  decision as the API returns it;
- `{"type": "error", "action": …, "ref": …, "status": 4xx, "code": …, "detail": …, "errors": {…}}`
  — 400 bad input, 403 no operator rights or a read-scoped token, 404 unknown id, 409
  conflict, 401 when the socket's sign-in or token has ended since it connected (the
  socket is then closed with 4401).

Every action re-checks the credential the socket connected with: a signed-out or idle
session, or a revoked or expired token, acts no more.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

from django.conf import settings
from django.contrib.auth import get_user
from django.utils.module_loading import import_string
from rest_framework import serializers

from agents.models import Agent
from hive_project.signin import session_is_idle

from . import inputs, services
from .access.services import token_still_valid
from .actors import acting
from .api import serializers as s
from .exceptions import DomainError
from .models import ApiToken, Decision
from .permissions import write_refusal


class ActionError(Exception):
    def __init__(self, status: int, code: str, detail: str, errors: dict | None = None):
        super().__init__(detail)
        self.status, self.code, self.detail, self.errors = status, code, detail, errors or {}


class AgentActionInput(inputs.ReasonInputSerializer):
    agent = serializers.IntegerField(min_value=1)


class DecisionAnswerActionInput(inputs.DecisionAnswerInputSerializer):
    decision = serializers.IntegerField(min_value=1)


def _agent(data) -> Agent:
    agent = Agent.objects.filter(pk=data["agent"]).first()
    if agent is None:
        raise ActionError(404, "not_found", f"no agent with id {data['agent']}", {"agent": "not found"})
    return agent


def _pause(data, user) -> dict:
    return s.AgentSerializer(services.agent_pause(agent=_agent(data), user=user, reason=data["reason"])).data


def _resume(data, user) -> dict:
    return s.AgentSerializer(services.agent_resume(agent=_agent(data), user=user)).data


def _restart(data, user) -> dict:
    return s.AgentSerializer(services.agent_restart(agent=_agent(data), user=user)).data


def _answer(data, user) -> dict:
    decision = Decision.objects.filter(pk=data["decision"]).first()
    if decision is None:
        raise ActionError(404, "not_found", f"no decision with id {data['decision']}", {"decision": "not found"})
    services.decision_answer(decision=decision, option=data["option"], comment=data["comment"], user=user)
    fresh = Decision.objects.select_related("workflow", "task", "answered_by").get(pk=decision.pk)
    return s.DecisionSerializer(fresh).data


@dataclass(frozen=True)
class SocketAction:
    input: type[serializers.Serializer]
    run: Callable[[dict, object], dict]


ACTIONS: dict[str, SocketAction] = {
    "agent.pause": SocketAction(AgentActionInput, _pause),
    "agent.resume": SocketAction(AgentActionInput, _resume),
    "agent.restart": SocketAction(AgentActionInput, _restart),
    "decision.answer": SocketAction(DecisionAnswerActionInput, _answer),
}


def credential_ended(scope) -> str | None:
    """Why the socket's sign-in no longer holds (token revoked or expired, session ended), else None."""
    user, token = scope.get("user"), scope.get("token")
    if token is not None:
        return None if token_still_valid(token=token) else "This token was revoked or has expired."
    session = scope.get("session")
    key = getattr(session, "session_key", None)
    if not key:
        return "Not signed in."
    store = import_string(f"{settings.SESSION_ENGINE}.SessionStore")(session_key=key)
    current = get_user(SimpleNamespace(session=store))
    if not current.is_authenticated or current.pk != getattr(user, "pk", None) or session_is_idle(store):
        return "The sign-in this socket was opened with has ended; sign in again."
    return None


def perform(*, action: str, content: dict, scope) -> dict:
    """Run one operator action for the socket's user (synchronous: call it through database_sync_to_async)."""
    try:
        ended = credential_ended(scope)
        if ended:
            raise ActionError(401, "not_authenticated", ended)
        user, token = scope.get("user"), scope.get("token")
        refusal = write_refusal(user, token if isinstance(token, ApiToken) else None)
        if refusal:
            raise ActionError(403, "permission_denied", refusal)
        spec = ACTIONS[action]
        serializer = spec.input(data=content)
        if not serializer.is_valid():
            errors = {field: " ".join(str(m) for m in messages) for field, messages in serializer.errors.items()}
            raise ActionError(400, "invalid", "; ".join(f"{k}: {v}" for k, v in errors.items()), errors)
        try:
            with acting(user=user, auth=token if isinstance(token, ApiToken) else None):
                data = spec.run(serializer.validated_data, user)
        except DomainError as exc:
            raise ActionError(exc.status_code, exc.code, exc.message, exc.errors) from None
        return {"type": "result", "action": action, "status": 200, "data": data}
    except ActionError as exc:
        return {
            "type": "error",
            "action": action,
            "status": exc.status,
            "code": exc.code,
            "detail": exc.detail,
            "errors": exc.errors,
        }
