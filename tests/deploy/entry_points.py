"""Check a deployment command line against the project's real entry points (no process is started)."""

from __future__ import annotations

import re
from pathlib import Path

from daphne.cli import CommandLineInterface
from django.core.management import get_commands, load_command_class

ROOT = Path(__file__).resolve().parents[2]
ASGI_APPLICATION = "hive_project.asgi:application"


def documented_variables() -> set[str]:
    """Variables named in .env.example, commented out or not."""
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))


def env_file_variables(path: Path) -> set[str]:
    return set(re.findall(r"^([A-Z][A-Z0-9_]+)=", path.read_text(), flags=re.MULTILINE))


def check_command(argv: list[str]) -> str:
    """What `argv` runs ("daphne", "manage.py <command>"), after checking that it parses; AssertionError if not.

    Accepted forms: `daphne …`, `<python> -m daphne …`, `<python> manage.py <command> …`.
    """
    argv = list(argv)
    if Path(argv[0]).name.startswith("python") and argv[1:3] == ["-m", "daphne"]:
        argv = ["daphne", *argv[3:]]
    if argv[0] == "daphne":
        args = CommandLineInterface().parser.parse_args(argv[1:])
        assert args.application == ASGI_APPLICATION, argv
        assert args.proxy_headers, f"daphne behind a proxy needs --proxy-headers: {argv}"
        return "daphne"
    assert Path(argv[0]).name.startswith("python") and argv[1] == "manage.py", f"unknown entry point: {argv}"
    name, options = argv[2], argv[3:]
    commands = get_commands()
    assert name in commands, f"manage.py has no command {name!r}"
    command = load_command_class(commands[name], name)
    command.create_parser("manage.py", name).parse_args(options)  # SystemExit on an unknown option
    return f"manage.py {name}"
