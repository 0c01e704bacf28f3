"""The one validation of every write: input serializers shared by all entry points.

The JSON API validates request bodies with these serializers; team files, the
intake commands, console forms and the admin hand their values to the services,
which validate them with the same serializers. So every entry point answers a
bad value with the same field-level message, and every limit is read from the
model constants the database constraints are made of.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from agents.models import Agent
from agents.runtimes import RuntimeConfigError, validate_runtime_config
from agents.runtimes.command_config import PLACEHOLDER, TEXT_PLACEHOLDERS

from . import patterns
from .exceptions import DomainError
from .jsonlimits import json_problem
from .models import Session, Workflow
from .repository_checks import RepositoryProblem, branch_checked_out_in, branch_name_problem, repository_inspect

MAX_TEAM_MEMBERS = 64
MAX_BACKLOG_ITEMS = 50


def between(low, high, *, unit: str = "") -> dict[str, str]:
    """DRF error messages for a range, in the words every entry point uses."""
    text = f"must be between {low} and {high}{' ' + unit if unit else ''}"
    return {"min_value": text, "max_value": text}


# --- strict fields --------------------------------------------------------------------------


class TextField(serializers.CharField):
    """Text only: a number or a boolean is refused, not turned into its text. NUL characters are refused."""

    default_error_messages = {"invalid": "must be a string"}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """A JSON boolean: "yes", 1 or "false" are refused rather than guessed."""

    default_error_messages = {"invalid": "must be true or false"}

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class WholeNumberField(serializers.IntegerField):
    """A JSON integer: strings, booleans and fractions are refused, as the published schema says."""

    default_error_messages = {"invalid": "must be a whole number"}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


@extend_schema_field(
    {
        "oneOf": [
            {"type": "number", "minimum": 0, "maximum": float(Workflow.ESTIMATE_MAX_HOURS)},
            {"type": "string", "pattern": r"^(10000(\.0{1,2})?|\d{1,4}(\.\d{1,2})?)$"},
        ],
        "nullable": True,
    }
)
class HoursField(serializers.DecimalField):
    """Hours as a JSON number or a decimal string ("12.5"); NaN and infinities are refused."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or data == "":
            self.fail("invalid")
        return super().to_internal_value(data)

    def validate_precision(self, value):
        # Hours are kept to the cent: 1.234 h is 1.23 h, not an error (a negative stays refused by its sign).
        if value.is_finite() and Decimal("0") <= value <= Workflow.ESTIMATE_MAX_HOURS:
            value = value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        return super().validate_precision(value)

    def validate_empty_values(self, data):
        if data == "":  # "" is not a number of hours; null (or leaving it out) asks for the default
            self.fail("invalid")
        return super().validate_empty_values(data)


@extend_schema_field({"type": "object", "additionalProperties": True})
class JSONObjectField(serializers.DictField):
    """A JSON object stored as is: at most MAX_JSON_DEPTH levels deep, no NUL characters."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        problem = json_problem(value)
        if problem:
            raise serializers.ValidationError(problem)
        return value


def choice_message(what: str, choices) -> dict[str, str]:
    return {"invalid_choice": f'unknown {what} "{{input}}"; choose one of {", ".join(str(c) for c, _ in choices)}'}


ROLE_ERRORS = choice_message("role", Agent.Role.choices)
RUNTIME_ERRORS = choice_message("runtime", Agent.Runtime.choices)
PATTERN_ERRORS = choice_message("pattern", patterns.PATTERN_CHOICES)


def capabilities_field(**kwargs) -> serializers.ListField:
    return serializers.ListField(
        child=TextField(max_length=Agent.CAPABILITY_MAX_LENGTH, allow_blank=False), max_length=64, **kwargs
    )


def concurrency_field(**kwargs) -> WholeNumberField:
    return WholeNumberField(
        min_value=Agent.CONCURRENCY_MIN,
        max_value=Agent.CONCURRENCY_MAX,
        error_messages=between(Agent.CONCURRENCY_MIN, Agent.CONCURRENCY_MAX),
        **kwargs,
    )


def runtime_config_errors(exc: RuntimeConfigError) -> dict:
    """A runtime's complaints as serializer errors: a bad runtime on `runtime`, the rest on `runtime_config`."""
    errors: dict[str, Any] = {}
    config = {key: reason for key, reason in exc.errors.items() if key != "runtime"}
    if "runtime" in exc.errors:
        errors["runtime"] = [exc.errors["runtime"]]
    if config:
        errors["runtime_config"] = config
    return errors


# --- agents ----------------------------------------------------------------------------------


class MemberInputSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Agent.Role.choices, error_messages=ROLE_ERRORS)
    name = TextField(max_length=Agent.NAME_MAX_LENGTH, required=False, allow_blank=True, default="")
    runtime = serializers.ChoiceField(
        choices=Agent.Runtime.choices, default=Agent.Runtime.SCRIPTED, error_messages=RUNTIME_ERRORS
    )
    runtime_config = JSONObjectField(required=False, default=dict)
    capabilities = capabilities_field(required=False, default=list)
    concurrency = concurrency_field(default=Agent.CONCURRENCY_MIN)

    def validate(self, attrs):
        try:
            attrs["runtime_config"] = validate_runtime_config(attrs["runtime"], attrs.get("runtime_config"))
        except RuntimeConfigError as exc:
            raise serializers.ValidationError(runtime_config_errors(exc)) from exc
        attrs["name"] = attrs.get("name", "").strip()
        return attrs


class AgentCreateInputSerializer(MemberInputSerializer):
    session = WholeNumberField(min_value=1, help_text="Session id; an unknown one is a 404.")


class AgentUpdateInputSerializer(serializers.Serializer):
    name = TextField(max_length=Agent.NAME_MAX_LENGTH, required=False)
    runtime = serializers.ChoiceField(choices=Agent.Runtime.choices, required=False, error_messages=RUNTIME_ERRORS)
    runtime_config = JSONObjectField(required=False)
    capabilities = capabilities_field(required=False)
    concurrency = concurrency_field(required=False)

    def validate_name(self, value):
        value = value.strip()
        if not value:
            raise serializers.ValidationError("may not be blank")
        return value


# --- work ------------------------------------------------------------------------------------


class WorkInputSerializer(serializers.Serializer):
    title = TextField(max_length=Workflow.TITLE_MAX_LENGTH)
    description = TextField(required=False, allow_blank=True, default="")
    pattern = serializers.ChoiceField(
        choices=patterns.PATTERN_CHOICES, default=patterns.FEATURE_DELIVERY.key, error_messages=PATTERN_ERRORS
    )
    priority = WholeNumberField(
        min_value=Workflow.PRIORITY_MIN,
        max_value=Workflow.PRIORITY_MAX,
        default=0,
        error_messages=between(Workflow.PRIORITY_MIN, Workflow.PRIORITY_MAX),
    )
    estimate_hours = HoursField(
        max_digits=7,
        decimal_places=2,
        min_value=Decimal("0"),
        max_value=Workflow.ESTIMATE_MAX_HOURS,
        required=False,
        allow_null=True,
        default=None,
        error_messages=between(0, Workflow.ESTIMATE_MAX_HOURS, unit="hours"),
        help_text="Hours a human developer would need; empty: the pattern's default.",
    )
    files = serializers.ListField(
        child=TextField(max_length=Workflow.FILE_PATH_MAX_LENGTH, allow_blank=False),
        required=False,
        default=list,
        max_length=1000,
    )
    expects_change = StrictBooleanField(
        required=False,
        default=True,
        help_text="false when the work is expected to change no file (an implement step may then leave the "
        "repository as it was).",
    )

    def validate_title(self, value):
        if not value.strip():
            raise serializers.ValidationError("may not be blank")
        return value.strip()


class SubmitWorkInputSerializer(WorkInputSerializer):
    session = WholeNumberField(min_value=1, help_text="Session id; an unknown one is a 404.")


# --- sessions -------------------------------------------------------------------------------------

MAX_VERIFY_COMMANDS = 20
MAX_VERIFY_ARGS = 200
VERIFY_EXAMPLE = '[["python", "-m", "pytest", "-q"]]'


def verify_problem(commands: list[list[str]]) -> str | None:
    """Why these verify commands cannot run as given, or None: they are argv lists run as is, never templates."""
    for number, argv in enumerate(commands):
        program = argv[0]
        if program != program.strip() or any(char.isspace() for char in program):
            return (
                f"command {number}: {program!r} is a command line, not a program; split it into argv elements, "
                f"e.g. {VERIFY_EXAMPLE}"
            )
        for index, element in enumerate(argv):
            names = sorted({name for _, name in PLACEHOLDER.findall(element) if name} & (TEXT_PLACEHOLDERS | {"files"}))
            if names:
                return (
                    f"command {number}, element {index}: {{{names[0]}}} is not filled in here; verify commands run "
                    "as given, in the attempt's worktree (read HIVE_* variables from the environment instead)"
                )
    return None


def verify_field(**kwargs) -> serializers.ListField:
    argv = serializers.ListField(
        child=TextField(allow_blank=False, max_length=4096),
        min_length=1,
        max_length=MAX_VERIFY_ARGS,
        error_messages={
            "not_a_list": f"each command must be an argv list, e.g. {VERIFY_EXAMPLE}, not a shell string",
            "empty": "a command needs at least its program",
            "min_length": "a command needs at least its program",
            "max_length": f"at most {MAX_VERIFY_ARGS} arguments",
        },
    )
    return serializers.ListField(
        child=argv,
        max_length=MAX_VERIFY_COMMANDS,
        error_messages={
            "not_a_list": f"must be a list of argv lists, e.g. {VERIFY_EXAMPLE}",
            "max_length": f"at most {MAX_VERIFY_COMMANDS} commands",
        },
        **kwargs,
    )


class SessionInputSerializer(serializers.Serializer):
    name = TextField(max_length=Session.NAME_MAX_LENGTH)
    goal = TextField(required=False, allow_blank=True, default="")
    workspace = TextField(
        max_length=Session.WORKSPACE_MAX_LENGTH,
        required=False,
        allow_blank=True,
        default="",
        help_text="Absolute directory inside one of HIVE_WORKSPACE_ROOTS; empty for a fresh one under "
        "HIVE_WORKSPACE_ROOT.",
    )
    repository = TextField(
        max_length=Session.REPOSITORY_MAX_LENGTH,
        required=False,
        allow_blank=True,
        default="",
        help_text="Git repository to deliver to: an absolute path inside HIVE_WORKSPACE_ROOTS (bare or not) or a "
        "URL git can read (https, ssh, git, file). Empty for work without code.",
    )
    target_branch = TextField(
        max_length=Session.TARGET_BRANCH_MAX_LENGTH,
        required=False,
        allow_blank=True,
        default="",
        help_text="Branch deliveries are merged onto; empty for hive/<session>/main, made from the repository's "
        "HEAD. Never one checked out in the repository's own working copy.",
    )
    verify = verify_field(
        required=False,
        default=list,
        help_text=f"Commands the coordinator runs itself on every claim and merged tree, e.g. {VERIFY_EXAMPLE}.",
    )

    def validate_name(self, value):
        if not value.strip():
            raise serializers.ValidationError("may not be blank")
        return value.strip()

    def validate_target_branch(self, value):
        value = value.strip()
        problem = value and branch_name_problem(value)
        if problem:
            raise serializers.ValidationError(problem)
        return value

    def validate_verify(self, value):
        problem = verify_problem(value)
        if problem:
            raise serializers.ValidationError(problem)
        return value

    def validate(self, attrs):
        return {**attrs, **repository_input(attrs)}


def repository_input(attrs: dict) -> dict:
    """The delivery inputs checked together against the repository itself; field errors name what is wrong."""
    repository = attrs.get("repository", "").strip()
    target, verify = attrs.get("target_branch", ""), attrs.get("verify") or []
    if not repository:
        errors = {
            name: "needs a repository" for name, value in (("target_branch", target), ("verify", verify)) if value
        }
        if errors:
            raise serializers.ValidationError(errors)
        return {"repository": ""}
    try:
        info = repository_inspect(repository)
        checked_out_in = target and branch_checked_out_in(info, target)
    except RepositoryProblem as exc:
        raise serializers.ValidationError({"repository": str(exc)}) from exc
    if checked_out_in:
        raise serializers.ValidationError(
            {
                "target_branch": f"{target} is checked out in {checked_out_in}; the hive never touches that working "
                "copy: choose another branch or leave it empty"
            }
        )
    if target not in info.branches and not info.has_commits:
        raise serializers.ValidationError(
            {"repository": "has no commit yet; the target branch starts from its HEAD: commit once first"}
        )
    return {"repository": info.location}


class SpawnInputSerializer(SessionInputSerializer):
    members = MemberInputSerializer(
        many=True,
        required=False,
        min_length=1,
        max_length=MAX_TEAM_MEMBERS,
        help_text="Default: one scripted (simulated) agent per role.",
    )
    backlog = WorkInputSerializer(many=True, required=False, default=list, max_length=MAX_BACKLOG_ITEMS)


# --- small inputs ------------------------------------------------------------------------------


class ReasonInputSerializer(serializers.Serializer):
    reason = TextField(max_length=300, required=False, allow_blank=True, default="")


BULK_ACTIONS = ("pause", "resume", "restart")


class AgentBulkInputSerializer(serializers.Serializer):
    ids = serializers.ListField(child=WholeNumberField(min_value=1, max_value=2**63 - 1), min_length=1, max_length=500)
    action = serializers.ChoiceField(choices=[(a, a) for a in BULK_ACTIONS])
    reason = TextField(max_length=300, required=False, allow_blank=True, default="")


class DecisionAnswerInputSerializer(serializers.Serializer):
    option = TextField(max_length=40)
    comment = TextField(required=False, allow_blank=True, default="", max_length=4000)


# --- running a serializer outside a request -----------------------------------------------------------


def flat_errors(detail: Any, prefix: str = "") -> dict[str, str]:
    """DRF's nested error detail as {"members[1].concurrency": "must be …"}: one line per problem."""
    if isinstance(detail, dict):
        flat: dict[str, str] = {}
        for key, value in detail.items():
            if key == "non_field_errors":
                name = prefix
            elif isinstance(key, int):  # a ListField's errors are keyed by index
                name = f"{prefix}[{key}]"
            else:
                name = f"{prefix}.{key}" if prefix else str(key)
            flat.update(flat_errors(value, name))
        return flat
    if isinstance(detail, list):
        if all(isinstance(item, str) for item in detail):
            return {prefix: " ".join(str(item) for item in detail)} if detail else {}
        flat = {}
        for index, item in enumerate(detail):
            if item:
                flat.update(flat_errors(item, f"{prefix}[{index}]"))
        return flat
    return {prefix: str(detail)}


def validate_input(serializer_class: type[serializers.Serializer], data: Any, *, prefix: str = "") -> dict:
    """Validated data, or DomainError naming each bad field (dotted, with list indexes)."""
    serializer = serializer_class(data=data)
    if not serializer.is_valid():
        raise DomainError("invalid input", errors=flat_errors(serializer.errors, prefix.rstrip(".")))
    return dict(serializer.validated_data)
