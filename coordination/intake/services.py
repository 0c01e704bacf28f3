"""What an intake delivery does. Each accepted delivery is one transaction: its IntakeDelivery
row, the work or command it carries, and its CoordinationEvent. A refused one writes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from ..events import EventDraft, event_record
from ..exceptions import ConflictError, DomainError
from ..models import CoordinationEvent, Task, Workflow
from ..services import WorkSpec, task_retry, work_submit
from . import github
from .models import IntakeDelivery, IntakeSource

E = CoordinationEvent.Type
Outcome = IntakeDelivery.Outcome
KEY_MAX = 200
TOKEN_PREFIX = "hvi_"


class SourceNotFound(DomainError):
    status_code = 404
    code = "not_found"


class SignatureRefused(DomainError):
    status_code = 403
    code = "signature_invalid"


class TokenRefused(DomainError):
    status_code = 401
    code = "token_invalid"


class IntakeNotConfigured(DomainError):
    status_code = 503
    code = "intake_not_configured"


class DuplicateDelivery(ConflictError):
    code = "duplicate_delivery"


class IdempotencyKeyReused(DomainError):
    status_code = 422
    code = "idempotency_key_reused"


@dataclass(frozen=True)
class IntakeResult:
    status: int
    body: dict[str, Any]
    replayed: bool = False


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _key(value: str, *, header: str) -> str:
    value = (value or "").strip()
    if not value:
        raise DomainError("required", field=header)
    if len(value) > KEY_MAX:
        raise DomainError(f"at most {KEY_MAX} characters", field=header)
    return value


def _workflow_ref(workflow: Workflow | None) -> dict[str, Any] | None:
    if workflow is None:
        return None
    return {
        "id": workflow.pk,
        "title": workflow.title,
        "pattern": workflow.pattern,
        "status": workflow.status,
        "session": workflow.session_id,
        "source_url": workflow.source_url,
    }


def _accept(
    *,
    source: IntakeSource,
    key: str,
    body: bytes,
    event: str,
    action: str = "",
    item_url: str = "",
    apply: Callable[[], tuple[str, str, Workflow | None, str, dict]],
) -> IntakeResult:
    """Run `apply` and record the delivery and its event, all in one transaction.

    `apply` returns (outcome, detail, workflow, event type, event data). A key already
    recorded raises IntegrityError (the unique constraint), so concurrent copies of one
    delivery create nothing twice: the caller looks again and answers as for a replay.
    """
    now = timezone.now()
    with transaction.atomic():
        outcome, detail, workflow, event_type, data = apply()
        status = 201 if outcome == Outcome.WORK_CREATED else 200
        delivery = IntakeDelivery(
            source=source,
            key=key,
            event=event,
            action=action,
            item_url=item_url,
            outcome=outcome,
            detail=detail[:300],
            workflow=workflow,
            body_sha256=_digest(body),
            response_status=status,
            received_at=now,
        )
        # A key (or an item's work) recorded meanwhile by a concurrent copy fails here: all of it rolls back.
        delivery.save(force_insert=True)
        delivery.response = {
            "delivery": delivery.pk,
            "source": source.slug,
            "outcome": outcome,
            "detail": detail,
            "workflow": _workflow_ref(workflow),
        }
        delivery.save(update_fields=["response"])
        event_record(
            EventDraft(
                type=event_type,
                message=detail,
                session_id=source.session_id,
                workflow_id=workflow.pk if workflow else None,
                collaboration_data={
                    "source": source.slug,
                    "kind": source.kind,
                    "delivery": delivery.pk,
                    "event": event,
                    "action": action,
                    "outcome": outcome,
                    "url": item_url,
                    **data,
                },
            ),
            now=now,
        )
    return IntakeResult(status=status, body=delivery.response)


def _tracked(source: IntakeSource, url: str) -> IntakeDelivery | None:
    """The delivery that turned this item into work, if one did (intake_one_workflow_per_item)."""
    if not url:
        return None
    return (
        IntakeDelivery.objects.filter(source=source, item_url=url, outcome=Outcome.WORK_CREATED)
        .select_related("workflow")
        .first()
    )


def _once(run: Callable[[], IntakeResult]) -> IntakeResult:
    """Run, and once more if a concurrent copy won a unique constraint: the second run sees its row."""
    try:
        return run()
    except IntegrityError:
        return run()


# --- GitHub ------------------------------------------------------------------------------


def github_delivery_receive(
    *, source: IntakeSource, event: str, delivery_id: str, signature: str, body: bytes, content_type: str
) -> IntakeResult:
    """Verify, deduplicate and apply one GitHub webhook delivery.

    - `ping`: answered (pong);
    - `issues` opened / reopened with the source's label, or `labeled` with it: a workflow of the
      source's pattern in its session, linked back to the issue; once per issue;
    - `issue_comment` created whose first line is the source's command, by a trusted author, on
      an issue with a workflow: that workflow's failed tasks are queued again;
    - anything else is recorded as received with the reason nothing was done.
    """
    secret = source.webhook_secret()
    if not secret:
        raise IntakeNotConfigured(
            f"the webhook secret is not configured: set the environment variable {source.secret_env}"
        )
    if not signature:
        raise SignatureRefused(
            "X-Hub-Signature-256 is missing: set a secret on the GitHub webhook", field="X-Hub-Signature-256"
        )
    if not github.signature_matches(secret=secret, body=body, header=signature):
        raise SignatureRefused(
            "X-Hub-Signature-256 does not match the body: the webhook's secret differs from "
            f"{source.secret_env}, or the body was changed on the way",
            field="X-Hub-Signature-256",
        )
    delivery_id = _key(delivery_id, header="X-GitHub-Delivery")
    event = (event or "").strip()
    if not event:
        raise DomainError("required", field="X-GitHub-Event")
    payload = github.decode_body(body, content_type)

    def run() -> IntakeResult:
        previous = IntakeDelivery.objects.filter(source=source, key=delivery_id).first()
        if previous is not None:
            raise DuplicateDelivery(
                f"delivery {delivery_id} was already received at {previous.received_at:%Y-%m-%d %H:%M:%S} UTC "
                f"({previous.get_outcome_display().lower()}); nothing was done again",
                field="X-GitHub-Delivery",
            )
        if event not in github.SUPPORTED_EVENTS:
            detail = f"GitHub {event} event ignored: this intake reads {', '.join(github.SUPPORTED_EVENTS)}"
            action = payload.get("action")
            return _accept(
                source=source,
                key=delivery_id,
                body=body,
                event=event[:40],
                action=action[:40] if isinstance(action, str) else "",
                apply=lambda: (Outcome.IGNORED, detail, None, E.INTAKE_RECEIVED, {}),
            )
        parsed = github.parse(event, payload)
        if isinstance(parsed, github.Ping):
            return _accept(source=source, key=delivery_id, body=body, event=event, apply=lambda: _ping(parsed))
        return _accept(
            source=source,
            key=delivery_id,
            body=body,
            event=event,
            action=parsed.action[:40],
            item_url=parsed.issue.url,
            apply=lambda: (
                _issues(source, parsed) if isinstance(parsed, github.IssuesEvent) else _comment(source, parsed)
            ),
        )

    return _once(run)


def _ping(ping: github.Ping) -> tuple:
    where = f" for {ping.repository}" if ping.repository else ""
    detail = f"GitHub ping from hook {ping.hook_id or '?'}{where} answered: the intake is connected"
    return Outcome.PONG, detail, None, E.INTAKE_RECEIVED, {"hook_id": ping.hook_id, "zen": ping.zen}


def _issues(source: IntakeSource, event: github.IssuesEvent) -> tuple:
    issue = event.issue
    data = {"ref": issue.ref, "sender": event.sender}
    labelled = (event.action == "labeled" and event.label.strip().lower() == source.label.strip().lower()) or (
        event.action in ("opened", "reopened") and issue.has_label(source.label)
    )
    if not labelled:
        why = (
            f"the label “{event.label}” is not “{source.label}”"
            if event.action == "labeled"
            else f"an issue becomes work when opened, reopened or labeled with “{source.label}”"
        )
        return (
            Outcome.IGNORED,
            f"GitHub issue {issue.ref} {event.action}: nothing to do ({why})",
            None,
            E.INTAKE_RECEIVED,
            data,
        )
    tracked = _tracked(source, issue.url)
    if tracked is not None:
        detail = f"GitHub issue {issue.ref} {event.action}: already work, workflow #{tracked.workflow_id}"
        return Outcome.IGNORED, detail, tracked.workflow, E.INTAKE_RECEIVED, data
    description = (issue.body.strip() + "\n\n" if issue.body.strip() else "") + f"GitHub issue {issue.ref}: {issue.url}"
    workflow = work_submit(
        session=source.session,
        work=WorkSpec(
            title=issue.title.strip()[:200],
            description=description,
            pattern=source.pattern,
            priority=source.priority,
            estimate_hours=source.estimate_hours,
            source_url=issue.url,
        ),
    )
    detail = f"GitHub issue {issue.ref} “{workflow.title}” became workflow #{workflow.pk} ({workflow.pattern})"
    return Outcome.WORK_CREATED, detail, workflow, E.INTAKE_WORK_CREATED, data


def _comment(source: IntakeSource, event: github.IssueCommentEvent) -> tuple:
    issue = event.issue
    data = {"ref": issue.ref, "sender": event.sender, "author": event.author}
    command = source.comment_command.strip()
    first_line = event.comment.strip().splitlines()[0].strip() if event.comment.strip() else ""
    where = f"comment on {issue.ref}"

    def ignored(why: str, workflow: Workflow | None = None) -> tuple:
        return Outcome.IGNORED, f"GitHub {where}: nothing to do ({why})", workflow, E.INTAKE_RECEIVED, data

    if not command:
        return ignored("this source takes no comment commands")
    if issue.is_pull_request:
        return ignored("a comment on a pull request; commands work on issues that became work")
    if event.action != "created":
        return ignored(f"comment {event.action}; only new comments carry commands")
    if first_line.lower() != command.lower():
        return ignored(f"its first line is not “{command}”")
    if event.author_association.upper() not in github.TRUSTED_ASSOCIATIONS:
        return ignored(
            f"@{event.author} is {event.author_association.lower()}; commands need an owner, member or collaborator"
        )
    tracked = _tracked(source, issue.url)
    if tracked is None or tracked.workflow is None:
        return ignored("the issue has no workflow")
    workflow = tracked.workflow
    retried = []
    for task in Task.objects.filter(workflow=workflow, status=Task.Status.FAILED).order_by("id"):
        try:
            task_retry(task=task)
        except ConflictError:
            continue  # an open decision waits on it: a human answers that in the console
        retried.append(task)
    if not retried:
        return ignored(f"workflow #{workflow.pk} is {workflow.status} with no failed task to retry", workflow)
    workflow.refresh_from_db()
    titles = ", ".join(f"“{t.title}”" for t in retried)
    detail = f"@{event.author} asked “{command}” on {issue.ref}: {titles} queued again (workflow #{workflow.pk})"
    data["tasks"] = [t.pk for t in retried]
    return Outcome.COMMAND_APPLIED, detail, workflow, E.INTAKE_COMMAND, data


# --- Generic JSON -------------------------------------------------------------------------


def token_issue(*, source: IntakeSource) -> str:
    """Give a JSON source a new bearer token (the old one stops working); returns it, the only time it is shown."""
    if source.kind != IntakeSource.Kind.JSON:
        raise DomainError(
            "only JSON sources use tokens; a GitHub source is verified by its webhook secret", field="kind"
        )
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    source.token_hash = _digest(token.encode())
    source.token_hint = token[:10]
    source.token_issued_at = timezone.now()
    source.save(update_fields=["token_hash", "token_hint", "token_issued_at", "updated_at"])
    return token


def token_matches(*, source: IntakeSource, token: str) -> bool:
    """Constant-time check of a presented bearer token against the stored SHA-256."""
    if not source.token_hash or not token:
        return False
    return hmac.compare_digest(_digest(token.encode("utf-8", "replace")), source.token_hash)


def json_authenticate(*, source: IntakeSource, token: str) -> None:
    """Refuse a request without this JSON source's current bearer token (before its body is read)."""
    if not source.token_hash:
        raise IntakeNotConfigured("this source has no token yet: issue one in the admin")
    if not token:
        raise TokenRefused("send the source's token as Authorization: Bearer <token>", field="Authorization")
    if not token_matches(source=source, token=token):
        raise TokenRefused("the token is not this source's current token", field="Authorization")


def json_delivery_receive(*, source: IntakeSource, idempotency_key: str, body: bytes, work: WorkSpec) -> IntakeResult:
    """Create the work once per Idempotency-Key (the caller authenticated the request).

    The same key with the same body returns the first answer again (`replayed`) and creates
    nothing; the same key with another body is refused (422). An item whose `source_url`
    is already work of this source is not created twice: the answer names its workflow.
    """
    key = _key(idempotency_key, header="Idempotency-Key")
    digest = _digest(body)

    def apply() -> tuple:
        tracked = _tracked(source, work.source_url)
        if tracked is not None:
            detail = f"{work.source_url} is already work: workflow #{tracked.workflow_id}"
            return Outcome.IGNORED, detail, tracked.workflow, E.INTAKE_RECEIVED, {}
        workflow = work_submit(session=source.session, work=work)
        detail = f"“{workflow.title}” arrived through {source.name}: workflow #{workflow.pk} ({workflow.pattern})"
        return Outcome.WORK_CREATED, detail, workflow, E.INTAKE_WORK_CREATED, {}

    def run() -> IntakeResult:
        previous = IntakeDelivery.objects.filter(source=source, key=key).first()
        if previous is not None:
            if previous.body_sha256 != digest:
                raise IdempotencyKeyReused(
                    f"Idempotency-Key {key!r} was used for another request body at "
                    f"{previous.received_at:%Y-%m-%d %H:%M:%S} UTC; use a new key for new work",
                    field="Idempotency-Key",
                )
            return IntakeResult(status=previous.response_status, body=previous.response, replayed=True)
        return _accept(source=source, key=key, body=body, event="json", item_url=work.source_url, apply=apply)

    return _once(run)
