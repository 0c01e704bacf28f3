"""The repository context a model agent is shown, within a per-call token budget.

What a step needs comes first: a reviewer sees the diff against the workflow's base; a
developer or architect sees the declared files (and any it asks for), then the work so far;
a tester or devops engineer sees the diff's outline and the diff. Whatever does not fit the
budget is cut with a marker saying how much was left out, never silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .base import TaskContext
from .worktree import WorktreeError, diff_from, diffstat_from, inside, is_worktree, tracked_files

# A rough, model-independent estimate; the budget bounds the prompt, it does not bill it.
CHARS_PER_TOKEN = 4
LISTING_LIMIT = 400
REVIEW_ROLES = frozenset({"reviewer"})
REVIEW_STEPS = frozenset({"review"})
EDIT_ROLES = frozenset({"developer", "architect"})


def reviewing(ctx: TaskContext) -> bool:
    return ctx.role in REVIEW_ROLES or ctx.step in REVIEW_STEPS


def editing(ctx: TaskContext) -> bool:
    return ctx.role in EDIT_ROLES and not reviewing(ctx)


@dataclass
class Budget:
    tokens: int

    def __post_init__(self) -> None:
        self.chars = self.tokens * CHARS_PER_TOKEN

    def take(self, label: str, text: str) -> str:
        """`text`, or as much of its head as fits, with a marker naming what was left out."""
        if len(text) <= self.chars:
            self.chars -= len(text)
            return text
        kept, omitted = text[: max(self.chars, 0)], len(text) - max(self.chars, 0)
        self.chars = 0
        return f"{kept}\n[… {omitted} characters of {label} omitted: the context budget is {self.tokens} tokens]\n"


def repository_context(ctx: TaskContext, *, budget_tokens: int, extra_files: tuple[str, ...] = ()) -> str:
    """The sections of the prompt that show the code; empty for work outside a git worktree."""
    if budget_tokens <= 0 or not ctx.workspace or not is_worktree(ctx.workspace):
        return ""
    budget = Budget(budget_tokens)
    base = ctx.base_sha or "HEAD"
    try:
        if reviewing(ctx):
            return _section("Changes under review (diff against the workflow's base)", _diff(ctx, base), budget)
        if editing(ctx):
            sections = [file_contents(ctx.workspace, [*ctx.files, *extra_files], budget=budget)]
            diff = _diff(ctx, base)
            if diff.strip():
                sections.append(_section("The workflow's changes so far", diff, budget))
            sections.append(_section("Files in the repository", _listing(ctx.workspace), budget))
            return "\n".join(part for part in sections if part)
        stat = diffstat_from(ctx.workspace, base=base)
        return "\n".join(
            part
            for part in (
                _section("Outline of the changes", stat, budget),
                _section("The changes", _diff(ctx, base), budget),
            )
            if part
        )
    except WorktreeError as exc:
        return f"(The repository could not be read: {exc})"


def file_contents(worktree: str, paths: list[str], *, budget: Budget) -> str:
    parts = []
    for relative in dict.fromkeys(paths):
        target = inside(worktree, relative)
        if target is None:
            parts.append(f"### {relative}\n(not a path inside the repository)")
        elif not target.is_file():
            parts.append(f"### {relative}\n(does not exist yet)")
        else:
            parts.append(f"### {relative}\n```\n{budget.take(relative, _read(target))}```")
    return _section("Files", "\n\n".join(parts), budget=None) if parts else ""


def _diff(ctx: TaskContext, base: str) -> str:
    return diff_from(ctx.workspace, base=base) or "(no changes)"


def _listing(worktree: str) -> str:
    files = tracked_files(worktree)
    shown = "\n".join(files[:LISTING_LIMIT])
    if len(files) > LISTING_LIMIT:
        shown += f"\n[… {len(files) - LISTING_LIMIT} more files not listed]"
    return shown


def _section(title: str, text: str, budget: Budget | None) -> str:
    if not text.strip():
        return ""
    body = text if budget is None else budget.take(title.lower(), text)
    return f"## {title}\n{body}".rstrip() + "\n"


def _read(target: Path) -> str:
    try:
        text = target.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return "(binary file)\n"
    return text if text.endswith("\n") else text + "\n"
