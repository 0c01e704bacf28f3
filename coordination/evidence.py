"""The line of an agent's output that shows why its work failed: what a human deciding should read first.

Test runners and linters print warnings, progress and summaries around the one line that
matters. This picks, in order: pytest's `E   assert …` / `E   SomeError: …` lines, a
`FAILED path::test - reason` line, an `AssertionError`/`…Error:` line, a `file:line:col:
message` diagnostic, and only then the runtime's own summary.
"""

from __future__ import annotations

import re

PATTERNS = (
    re.compile(r"^E\s{2,}(\S.*)$"),  # pytest's explanation lines
    re.compile(r"^(FAILED \S+.*)$"),  # pytest's short summary
    re.compile(r"^(?:\S+\s)?((?:[A-Z]\w*)?(?:Error|Exception)\b:?.*)$"),  # AssertionError: …, TypeError …
    re.compile(r"^(\S+?:\d+(?::\d+)?:\s*\S.*)$"),  # file:line:col: message (linters, compilers)
    re.compile(r"^((?:error|fatal)\b:?.*)$", re.IGNORECASE),
)
NOISE = re.compile(r"warning|deprecat|^\s*(?:platform|rootdir|cachedir|plugins|collected)\b", re.IGNORECASE)
EVIDENCE_CHARS = 240


def failure_evidence(*, output: str, summary: str = "") -> str:
    """The most telling line of `output` (then of `summary`), or the summary itself."""
    lines = [line.rstrip() for line in (output or "").splitlines() if line.strip()]
    for pattern in PATTERNS:
        for line in lines:
            if NOISE.search(line):
                continue
            match = pattern.match(line.strip() if pattern is not PATTERNS[0] else line)
            if match:
                return _clip(match.group(1).strip())
    return _clip(summary.strip() or (lines[-1] if lines else ""))


def _clip(text: str) -> str:
    return text if len(text) <= EVIDENCE_CHARS else text[: EVIDENCE_CHARS - 1] + "…"
