"""GitHub webhooks: the signature check and the parts of `issues`, `issue_comment` and `ping` payloads read.

GitHub signs the raw request body with HMAC-SHA256 under the webhook's secret and sends
`X-Hub-Signature-256: sha256=<hex>`; the event name comes in `X-GitHub-Event` and a GUID
per delivery in `X-GitHub-Delivery` (the same GUID when a delivery is redelivered).
Payload shapes: https://docs.github.com/en/webhooks/webhook-events-and-payloads
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from ..exceptions import DomainError

SUPPORTED_EVENTS = ("issues", "issue_comment", "ping")
# Comment authors whose commands are obeyed (others can comment on public repositories).
TRUSTED_ASSOCIATIONS = frozenset({"OWNER", "MEMBER", "COLLABORATOR"})


def signature_matches(*, secret: bytes, body: bytes, header: str) -> bool:
    """Is `header` the `sha256=<hex>` HMAC of `body` under `secret`? Constant-time comparison."""
    expected = b"sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest().encode()
    return hmac.compare_digest(expected, header.strip().encode("utf-8", "replace"))


def sign(*, secret: bytes, body: bytes) -> str:
    """The X-Hub-Signature-256 value GitHub would send (tests and the README's curl example)."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def decode_body(body: bytes, content_type: str) -> dict[str, Any]:
    """The JSON object of a delivery sent as application/json or as a form field `payload`."""
    try:
        if content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
            fields = parse_qs(body.decode("utf-8"), strict_parsing=True)
            if "payload" not in fields:
                raise DomainError("a form-encoded delivery carries its JSON in the `payload` field", field="payload")
            text = fields["payload"][0]
        else:
            text = body.decode("utf-8")
        data = json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise DomainError(f"not a JSON document: {exc}", field="body") from exc
    if not isinstance(data, dict):
        raise DomainError("must be a JSON object", field="body")
    return data


@dataclass(frozen=True)
class Issue:
    repository: str  # "octo-org/shop"
    number: int
    title: str
    body: str
    url: str  # the issue's page on GitHub, the link back from its workflow
    labels: tuple[str, ...]
    is_pull_request: bool

    @property
    def ref(self) -> str:
        return f"{self.repository}#{self.number}"

    def has_label(self, name: str) -> bool:
        return name.strip().lower() in (label.lower() for label in self.labels)


@dataclass(frozen=True)
class Ping:
    hook_id: int | None
    zen: str
    repository: str


@dataclass(frozen=True)
class IssuesEvent:
    action: str  # opened, labeled, reopened, edited, closed, unlabeled, …
    issue: Issue
    label: str  # the label added or removed (labeled / unlabeled), else ""
    sender: str


@dataclass(frozen=True)
class IssueCommentEvent:
    action: str  # created, edited, deleted
    issue: Issue
    comment: str
    author: str
    author_association: str  # OWNER, MEMBER, COLLABORATOR, CONTRIBUTOR, NONE, …
    sender: str


class _Reader:
    """Pulls typed fields out of a payload, collecting every problem under its path."""

    def __init__(self, payload: dict[str, Any]):
        self.payload = payload
        self.errors: dict[str, str] = {}

    def get(self, path: str, kind: type | tuple[type, ...], *, required: bool = True, default: Any = None) -> Any:
        value: Any = self.payload
        for part in path.split("."):
            if not isinstance(value, dict) or part not in value or value[part] is None:
                if required:
                    self.errors[path] = "required"
                return default
            value = value[part]
        # JSON booleans are ints in Python; an id or a number is never a boolean.
        if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
            self.errors[path] = f"must be {_kind_name(kind)}"
            return default
        return value

    def check(self) -> None:
        if self.errors:
            raise DomainError("the payload is not a GitHub event of this type", errors=self.errors)


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", dict: "an object", list: "a list", bool: "a boolean"}
    return " or ".join(names.get(k, k.__name__) for k in _as_tuple(kind))


def _issue(reader: _Reader) -> Issue:
    labels = reader.get("issue.labels", list, required=False, default=[])
    names = []
    for i, label in enumerate(labels):
        if isinstance(label, dict) and isinstance(label.get("name"), str):
            names.append(label["name"])
        else:
            reader.errors[f"issue.labels[{i}].name"] = "required"
    url = reader.get("issue.html_url", str, default="")
    if url and not url.startswith(("https://", "http://")):
        reader.errors["issue.html_url"] = "must be an http(s) URL"
    return Issue(
        repository=reader.get("repository.full_name", str, default=""),
        number=reader.get("issue.number", int, default=0),
        title=reader.get("issue.title", str, default=""),
        body=reader.get("issue.body", str, required=False, default="") or "",
        url=url,
        labels=tuple(names),
        is_pull_request=isinstance(reader.payload.get("issue", {}).get("pull_request"), dict),
    )


def parse(event: str, payload: dict[str, Any]) -> Ping | IssuesEvent | IssueCommentEvent:
    """The delivery as a typed event; a payload missing what the intake reads is a DomainError by field."""
    reader = _Reader(payload)
    if event == "ping":
        parsed: Any = Ping(
            hook_id=reader.get("hook_id", int, required=False),
            zen=reader.get("zen", str, required=False, default=""),
            repository=reader.get("repository.full_name", str, required=False, default=""),
        )
    elif event == "issues":
        action = reader.get("action", str, default="")
        parsed = IssuesEvent(
            action=action,
            issue=_issue(reader),
            label=reader.get("label.name", str, required=action in ("labeled", "unlabeled"), default=""),
            sender=reader.get("sender.login", str, required=False, default=""),
        )
    elif event == "issue_comment":
        parsed = IssueCommentEvent(
            action=reader.get("action", str, default=""),
            issue=_issue(reader),
            comment=reader.get("comment.body", str, default=""),
            author=reader.get("comment.user.login", str, required=False, default=""),
            author_association=reader.get("comment.author_association", str, required=False, default="NONE"),
            sender=reader.get("sender.login", str, required=False, default=""),
        )
    else:
        raise ValueError(f"unsupported event {event!r}")
    reader.check()
    return parsed
