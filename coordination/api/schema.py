"""Touches to the generated OpenAPI document where a serializer alone cannot say the rule.

A member's `runtime_config` is checked by the runtime its `runtime` names, so the
schema offers one shape per runtime (oneOf), each taken from the runtime class
itself (agents.runtimes.*.config_schema); the lists of a spawn request have the
bounds the serializer enforces; and no text of a request may hold a NUL character
(PostgreSQL cannot store one), which every request string now says.
"""

from __future__ import annotations

import os
import re

from django.conf import settings

from agents.models import Agent
from agents.runtimes import RUNTIMES, CommandRuntime, PresetRuntime
from agents.runtimes.base import NOT_BLANK_PATTERN
from coordination.inputs import MAX_BACKLOG_ITEMS, MAX_TEAM_MEMBERS

MEMBER_COMPONENTS = ("MemberInputRequest", "AgentCreateInputRequest")
NO_NUL = "^[^\\x00]*$"
# Text that is required (minLength) is trimmed first, so it needs a character that is not a space.
NOT_BLANK = NOT_BLANK_PATTERN


def _forbid_nul(schema) -> None:
    """Every request string without a pattern of its own gets the NUL-free one; object keys too."""
    if isinstance(schema, list):
        for item in schema:
            _forbid_nul(item)
        return
    if not isinstance(schema, dict):
        return
    if schema.get("type") == "string" and "pattern" not in schema and "enum" not in schema:
        schema["pattern"] = NOT_BLANK if schema.get("minLength") else NO_NUL
    if isinstance(schema.get("additionalProperties"), dict) and "patternProperties" not in schema:
        schema["patternProperties"] = {NO_NUL: schema.pop("additionalProperties")}
        schema["additionalProperties"] = False
    for key, value in schema.items():
        if key != "enum":
            _forbid_nul(value)


def _member_variants(base: dict) -> list[dict]:
    variants = []
    for kind, runtime_class in sorted(RUNTIMES.items()):
        properties = {
            **base["properties"],
            "runtime": {"type": "string", "enum": [kind]},
            "runtime_config": runtime_class.config_schema,
        }
        if runtime_class is CommandRuntime:  # an argv of its own, or a coding-agent preset
            properties["runtime_config"] = {"oneOf": [CommandRuntime.config_schema, PresetRuntime.config_schema]}
        required = list(base.get("required", []))
        if kind != Agent.Runtime.SCRIPTED:  # scripted is the default runtime; the others must be named
            required += ["runtime", *(["runtime_config"] if runtime_class.config_schema.get("required") else [])]
        variants.append({"type": "object", "properties": properties, "required": sorted(set(required))})
    return variants


def workspace_pattern() -> str:
    """Empty, or an absolute path inside a workspace root, without '..' and with segments a file system takes."""
    roots = {str(root).rstrip("/") for root in settings.HIVE["WORKSPACE_ROOTS"]}
    roots |= {os.path.realpath(root).rstrip("/") for root in roots}
    alternatives = "|".join(re.escape(root) for root in sorted(roots))
    return rf"^(?!.*/\.\.(/|$))((?:{alternatives})(/[^/\x00]{{0,255}})*/?)?$"


def runtime_config_per_runtime(result, generator, request, public):
    """drf-spectacular postprocessing hook (SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"])."""
    schemas = result.get("components", {}).get("schemas", {})
    for name in MEMBER_COMPONENTS:
        if name in schemas:
            base = schemas[name]
            schemas[name] = {"oneOf": _member_variants(base), "description": base.get("description", "")}
    for name, schema in schemas.items():
        if name.endswith("Request"):
            _forbid_nul(schema)
    # Text filters refuse NUL too; `ordering` ignores what it does not know, so it stays as it is.
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []) if isinstance(operation, dict) else []:
                if parameter.get("in") == "query" and parameter.get("name") != "ordering":
                    _forbid_nul(parameter.get("schema"))
    for name in ("SpawnInputRequest", "SessionInputRequest"):
        if name in schemas:
            schemas[name]["properties"]["workspace"]["pattern"] = workspace_pattern()
    spawn = schemas.get("SpawnInputRequest")
    if spawn:
        spawn["properties"]["members"].update({"minItems": 1, "maxItems": MAX_TEAM_MEMBERS})
        spawn["properties"]["backlog"].update({"maxItems": MAX_BACKLOG_ITEMS})
    _spawn_body_optional(result.get("paths", {}).get("/api/coordination/spawn", {}).get("post"))
    return result


def _spawn_body_optional(operation: dict | None) -> None:
    """No body, or `{}`, spawns the configured default team; any other body is a full spawn request."""
    if not operation or "requestBody" not in operation:
        return
    body = operation["requestBody"]
    body["required"] = False
    for media in body.get("content", {}).values():
        empty = {"type": "object", "maxProperties": 0, "description": "The configured default team."}
        media["schema"] = {"oneOf": [media["schema"], empty]}
