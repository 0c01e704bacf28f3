"""Console forms. They only parse and check input; the services decide and write."""

from __future__ import annotations

from decimal import Decimal
from pathlib import PurePath

from django import forms

from agents.models import Agent

from . import patterns
from .exceptions import DomainError
from .jsonlimits import json_problem
from .models import Session, Workflow

RUNTIME_CHOICES = [
    ("scripted", "Scripted (simulated, for demos)"),
    ("command", "Command (a real program in the workspace)"),
    ("llm", "LLM (chat completions endpoint)"),
]


class BoundedJSONField(forms.JSONField):
    """JSON typed into a form: refused with a message when it nests too deep or holds NUL characters."""

    def to_python(self, value):
        try:
            value = super().to_python(value)
        except RecursionError as exc:
            raise forms.ValidationError("nested too deeply") from exc
        problem = json_problem(value)
        if problem:
            raise forms.ValidationError(problem)
        return value

    def bound_data(self, data, initial):
        try:
            return super().bound_data(data, initial)
        except RecursionError:
            return forms.fields.InvalidJSONInput(data)


class DomainErrorFormMixin:
    """Put a service's field → reason errors on the matching form fields."""

    field_aliases: dict[str, str] = {}

    def add_domain_error(self, exc: DomainError) -> None:
        errors = exc.errors or {"": exc.message}
        for key, reason in errors.items():
            name = self.field_aliases.get(key, key)
            if name not in self.fields:
                # members[0].runtime_config.command → runtime_config; anything unknown → the whole form
                head = name.split(".")[0].split("[")[0]
                name = self.field_aliases.get(head, head)
            if name in self.fields:
                self.add_error(name, reason)
            else:
                self.add_error(None, f"{key}: {reason}" if key else reason)


class SpawnTeamForm(DomainErrorFormMixin, forms.Form):
    name = forms.CharField(max_length=Session.NAME_MAX_LENGTH, help_text="Shown on every page; e.g. “Checkout revamp”.")
    goal = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    workspace = forms.CharField(
        required=False,
        max_length=Session.WORKSPACE_MAX_LENGTH,
        help_text="Absolute path of the directory the crew works in, inside a workspace root "
        "(HIVE_WORKSPACE_ROOTS). Empty: a new directory under the workspace root.",
    )
    roles = forms.MultipleChoiceField(
        choices=Agent.Role.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=[role.value for role in Agent.Role],
        help_text="One agent per ticked role.",
    )
    runtime = forms.ChoiceField(choices=RUNTIME_CHOICES, initial="scripted")
    runtime_config = BoundedJSONField(
        required=False,
        initial=dict,
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false", "class": "mono"}),
        help_text='Runtime settings as JSON, e.g. {"argv": ["pytest", "-q"]} for command or '
        '{"base_url": …, "model": …} for llm. Empty for scripted.',
    )
    repository = forms.CharField(
        required=False,
        max_length=Session.REPOSITORY_MAX_LENGTH,
        help_text="Git repository the crew delivers to: an absolute path inside a workspace root, or a URL "
        "(https, ssh, git, file). Empty for work without code.",
    )
    target_branch = forms.CharField(
        required=False,
        max_length=Session.TARGET_BRANCH_MAX_LENGTH,
        help_text="Branch deliveries are merged onto. Empty: hive/<session>/main, made from the repository's HEAD. "
        "Never a branch checked out in the repository's own working copy.",
    )
    verify = BoundedJSONField(
        required=False,
        initial=list,
        widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false", "class": "mono"}),
        help_text="Commands the coordinator runs on every claim and every merge, as JSON argv lists, e.g. "
        '[["python", "-m", "pytest", "-q"]]. Empty: none.',
    )
    field_aliases = {"members": "roles"}

    def clean_workspace(self) -> str:
        value = self.cleaned_data["workspace"].strip()
        if value and not PurePath(value).is_absolute():
            # the service says the same; checking here shows it together with the other field errors
            raise forms.ValidationError("must be an absolute path")
        return value

    def clean_verify(self):
        value = self.cleaned_data.get("verify")
        return [] if value in (None, "") else value  # its shape is the service's to check (coordination.inputs)

    def clean_runtime_config(self):
        value = self.cleaned_data.get("runtime_config")
        if value in (None, ""):
            return {}
        if not isinstance(value, dict):
            raise forms.ValidationError("must be a JSON object")
        return value

    def add_domain_error(self, exc: DomainError) -> None:
        # members[i].runtime_config.x → the runtime_config field, with the key named
        remapped = {}
        for key, reason in (exc.errors or {}).items():
            if ".runtime_config." in key:
                remapped["runtime_config"] = f"{key.rsplit('.', 1)[-1]}: {reason}"
            elif key.startswith("verify["):
                remapped["verify"] = f"{key.removeprefix('verify')}: {reason}"
            elif key.endswith(".role"):
                remapped["roles"] = reason
            else:
                remapped[key] = reason
        super().add_domain_error(DomainError(exc.message, errors=remapped) if remapped else exc)


class SubmitWorkForm(DomainErrorFormMixin, forms.Form):
    session = forms.ModelChoiceField(
        queryset=Session.objects.filter(status__in=[Session.Status.ACTIVE, Session.Status.PAUSED]),
        empty_label="Choose a session…",
    )
    title = forms.CharField(max_length=Workflow.TITLE_MAX_LENGTH)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 4}))
    pattern = forms.ChoiceField(choices=patterns.PATTERN_CHOICES, initial=patterns.FEATURE_DELIVERY.key)
    priority = forms.IntegerField(min_value=Workflow.PRIORITY_MIN, max_value=Workflow.PRIORITY_MAX, initial=0)
    estimate_hours = forms.DecimalField(
        required=False,
        min_value=Decimal("0"),
        max_value=Workflow.ESTIMATE_MAX_HOURS,
        decimal_places=2,
        help_text="Hours a human developer would need (drives the value figures). Empty: the pattern's default.",
    )
    files = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "class": "mono", "spellcheck": "false"}),
        help_text="Paths this work touches, one per line (work on the same files is serialised).",
    )
    expects_change = forms.BooleanField(
        required=False,
        initial=True,
        label="Changes files",
        help_text="Untick when the work is expected to change nothing: an implement step may then leave the "
        "repository as it was.",
    )
    field_aliases = {"pattern": "pattern"}

    def clean_files(self) -> list[str]:
        lines = [line.strip() for line in self.cleaned_data["files"].splitlines()]
        files = [line for line in lines if line]
        for path in files:
            if len(path) > Workflow.FILE_PATH_MAX_LENGTH:
                raise forms.ValidationError(f"each path at most {Workflow.FILE_PATH_MAX_LENGTH} characters")
        return files


class DecisionAnswerForm(forms.Form):
    option = forms.CharField(max_length=40)
    comment = forms.CharField(required=False, max_length=2000)


AGENT_ACTIONS = ("pause", "resume", "restart")


class AgentActionForm(forms.Form):
    reason = forms.CharField(required=False, max_length=300)


class TokenCreateForm(DomainErrorFormMixin, forms.Form):
    """A new API token for the signed-in user; coordination.access.services decides what is allowed."""

    name = forms.CharField(max_length=100, help_text="What the token is for, e.g. “CI bot” or “phone”.")
    scope = forms.ChoiceField(
        choices=[("read", "Read: status, figures, events"), ("operate", "Operate: read and change state")],
        initial="read",
    )
    expires = forms.TypedChoiceField(coerce=int, label="Expires in", help_text="The token stops working then.")

    def __init__(self, *args, default_days: int, max_days: int, can_operate: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        if not can_operate:  # the service refuses it anyway; do not offer it
            self.fields["scope"].choices = self.fields["scope"].choices[:1]
        days = sorted({d for d in (7, 30, default_days, 180, 365) if d <= max_days} | {min(default_days, max_days)})
        self.fields["expires"].choices = [(d, f"{d} days") for d in days]
        self.fields["expires"].initial = min(default_days, max_days)
