"""Search/replace edits, the one format in which model agents change code.

A reply carries any number of blocks, each naming a file on the line before it:

    app/views.py
    <<<<<<< SEARCH
    def hello():
        return "hi"
    =======
    def hello():
        return "hello"
    >>>>>>> REPLACE

The SEARCH text must occur exactly once in the file. An empty SEARCH creates a new file
(which must not exist yet). Edits are all-or-nothing: every block is checked against the
files first, and nothing is written unless all of them apply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .worktree import inside

FORMAT_INSTRUCTION = (
    "Make code changes only as search/replace blocks. For each change write the file path alone on "
    "one line, then:\n<<<<<<< SEARCH\n(exact lines from the current file)\n=======\n(the new lines)\n"
    ">>>>>>> REPLACE\nThe SEARCH text must match the file exactly, once; include enough lines to be "
    "unique. To create a file, leave SEARCH empty. Do not wrap the blocks in anything else."
)
READ_INSTRUCTION = "To see a file you were not shown, reply with lines of the form `READ: path` and nothing else."

SEARCH = re.compile(r"^<{5,9} SEARCH\s*$")
DIVIDER = re.compile(r"^={5,9}\s*$")
REPLACE = re.compile(r"^>{5,9} REPLACE\s*$")
FENCE = re.compile(r"^```")
READ_LINE = re.compile(r"^\s*READ:\s*(\S.*?)\s*$", re.MULTILINE)
MAX_EDITED_FILE_BYTES = 2 * 1024 * 1024


class EditError(Exception):
    """Why a reply's edits cannot be applied; nothing has been written."""


@dataclass(frozen=True)
class Edit:
    path: str
    search: str
    replace: str


def parse_edits(text: str) -> list[Edit]:
    """Every search/replace block in `text`, or EditError for a block that is not well formed."""
    lines = text.splitlines(keepends=True)
    edits: list[Edit] = []
    index = 0
    while index < len(lines):
        if not SEARCH.match(lines[index].rstrip("\n")):
            index += 1
            continue
        path = _path_before(lines, index)
        if not path:
            raise EditError(f"the block at line {index + 1} has no file path on the line before it")
        search, index = _collect(lines, index + 1, until=DIVIDER, block_line=index + 1)
        replace, index = _collect(lines, index + 1, until=REPLACE, block_line=index + 1)
        edits.append(Edit(path=path, search=search, replace=replace))
        index += 1
    return edits


def requested_reads(text: str) -> list[str]:
    return [match.group(1).strip("`'\"") for match in READ_LINE.finditer(text)]


def apply_edits(worktree: str | Path, edits: list[Edit]) -> list[str]:
    """Apply every edit or none; the relative paths changed, in order."""
    contents: dict[Path, str] = {}
    order: list[tuple[Path, str]] = []
    for number, edit in enumerate(edits, start=1):
        target = inside(worktree, edit.path)
        if target is None:
            raise EditError(f"edit {number}: {edit.path!r} is not a path inside the worktree")
        if target not in contents:
            contents[target] = _read(target, edit=edit, number=number)
            order.append((target, edit.path))
        current = contents[target]
        if edit.search == "":
            if current:
                raise EditError(f"edit {number}: {edit.path} already exists; SEARCH must quote the lines to change")
            contents[target] = edit.replace
            continue
        found = current.count(edit.search)
        if found == 0:
            raise EditError(f"edit {number}: the SEARCH text is not in {edit.path}")
        if found > 1:
            raise EditError(f"edit {number}: the SEARCH text matches {found} places in {edit.path}; quote more lines")
        contents[target] = current.replace(edit.search, edit.replace, 1)
    for target, _ in order:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(contents[target], encoding="utf-8")
    return [relative for _, relative in order]


def _read(target: Path, *, edit: Edit, number: int) -> str:
    if not target.exists():
        if edit.search:
            raise EditError(f"edit {number}: {edit.path} does not exist (leave SEARCH empty to create it)")
        return ""
    if not target.is_file():
        raise EditError(f"edit {number}: {edit.path} is not a file")
    if target.stat().st_size > MAX_EDITED_FILE_BYTES:
        raise EditError(f"edit {number}: {edit.path} is larger than {MAX_EDITED_FILE_BYTES // 1024 // 1024} MiB")
    try:
        return target.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise EditError(f"edit {number}: {edit.path} is not UTF-8 text") from exc


def _path_before(lines: list[str], index: int) -> str:
    """The file path written on the line before a block (an opening code fence may sit between)."""
    for back in range(index - 1, max(index - 3, -1), -1):
        line = lines[back].strip()
        if line.startswith("```"):
            continue
        return line.strip("`*").strip()
    return ""


def _collect(lines: list[str], index: int, *, until: re.Pattern, block_line: int) -> tuple[str, int]:
    start = index
    while index < len(lines):
        stripped = lines[index].rstrip("\n")
        if until.match(stripped):
            return "".join(lines[start:index]), index
        if SEARCH.match(stripped) or (until is DIVIDER and REPLACE.match(stripped)):
            break
        index += 1
    expected = "=======" if until is DIVIDER else ">>>>>>> REPLACE"
    raise EditError(f"the block at line {block_line} is not closed: expected a {expected} line")
