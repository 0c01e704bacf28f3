"""The crew a validation run works with: the demo crew by default, or a team file's.

The crew gets a session of its own ("Validation #N: …") in a fresh git repository, so a
run never works in anyone's working copy, and a catalogue of work the run submits as it
goes (the demo's catalogue, or the team file's backlog). With the `agent` fault, one agent's
program is wrapped by faulty_agent.py and its timeout shortened, so a hang ends in time.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from coordination import demo
from coordination.exceptions import DomainError
from coordination.models import Session
from coordination.services import WorkSpec
from coordination.teamfile import WORK_KEYS, load_team_file, team_spawn_from_config

FAULTY_AGENT = Path(__file__).resolve().parent / "faulty_agent.py"


@dataclass
class Crew:
    session: Session
    workspace: Path
    catalogue: list[dict]
    label: str  # "demo crew" or the team file
    faulty_agent: str = ""  # name of the agent the `agent` fault hits

    def work(self, index: int) -> WorkSpec:
        """The index-th piece of work: the catalogue in turn, numbered from its second pass on."""
        item = dict(self.catalogue[index % len(self.catalogue)])
        take = index // len(self.catalogue) + 1
        if take > 1:
            item["title"] = f"{item['title']} #{take}"[:200]
        return WorkSpec(**item)


def _empty_repository(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for argv in (
        ["git", "init", "--quiet", "--initial-branch=main"],
        [
            "git",
            "-c",
            "user.name=validate_hive",
            "-c",
            "user.email=validate@agent-hive.invalid",
            "commit",
            "--quiet",
            "--allow-empty",
            "-m",
            "Start the validation workspace",
        ],
    ):
        done = subprocess.run(argv, cwd=path, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise DomainError(f"{' '.join(argv[:2])} failed in {path}: {done.stderr.strip()}", field="team")
    return path


def _wrap(member: dict, *, charges: Path, log: Path, timeout: float) -> None:
    config = member.setdefault("runtime_config", {})
    config["argv"] = [
        sys.executable,
        str(FAULTY_AGENT),
        "--charges",
        str(charges),
        "--log",
        str(log),
        "--",
        *config["argv"],
    ]
    config["timeout"] = min(float(config.get("timeout", timeout)), timeout)


def crew_create(
    *,
    run_label: str,
    root: Path,
    team_file: str = "",
    agent_fault: tuple[Path, Path] | None = None,
    agent_timeout: float = 20.0,
) -> Crew:
    """Spawn the run's crew in a new repository under `root`; `agent_fault` is (charges file, log file)."""
    if team_file:
        config = copy.deepcopy(load_team_file(team_file))
        catalogue = [{key: item[key] for key in item if key in WORK_KEYS} for item in config.get("backlog") or []]
        if not catalogue:
            raise DomainError(f"{team_file} has no backlog: the run needs work to submit", field="team")
        workspace = _empty_repository(root / "workspace")
        config["workspace"] = str(workspace)
        label = f"team file {team_file}"
    else:
        workspace = demo.workspace_create(root=root)
        config = demo.team_config(workspace=workspace)
        catalogue = demo.catalogue()
        label = "demo crew"
    config["name"] = f"Validation #{run_label}: {config.get('name') or 'crew'}"[:120]
    config["backlog"] = []
    faulty = ""
    if agent_fault is not None:
        members = [m for m in config.get("members") or [] if m.get("runtime") == "command"]
        if not members:
            raise DomainError("the agent fault needs a member with the command runtime", field="faults")
        target = next((m for m in members if m.get("role") == "developer"), members[0])
        _wrap(target, charges=agent_fault[0], log=agent_fault[1], timeout=agent_timeout)
    session = team_spawn_from_config(config)
    if agent_fault is not None:
        faulty = next(
            agent.name
            for agent in session.agents.all()
            if str(FAULTY_AGENT) in (agent.runtime_config or {}).get("argv", [])
        )
    return Crew(session=session, workspace=workspace, catalogue=catalogue, label=label, faulty_agent=faulty)
