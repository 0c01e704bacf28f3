"""The `agent` fault: an agent's program that fails, or hangs past its timeout, when the fault is armed.

    python faulty_agent.py --charges FILE --log FILE -- <the agent's own argv…>

`validate_hive` puts this in front of one agent's argv. While FILE holds charges
(a JSON list such as ["fail", "hang"]), each run takes the first one: "fail" exits 1 at once,
"hang" sleeps until the runtime's timeout kills it. With no charge left it becomes the agent's
own program (exec), so the agent works as it always does. Every charge spent is appended to the
log as a JSON line with the task and attempt (HIVE_TASK_ID, HIVE_ATTEMPT). It runs as a plain
program in the task's workspace and imports nothing from Django.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import sys
import time


def take_charge(path: str) -> str:
    """Pop the first charge under an exclusive lock; "" when there is none."""
    if not os.path.exists(path):
        return ""
    with open(path, "r+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            charges = json.loads(handle.read() or "[]")
        except json.JSONDecodeError:
            charges = []
        if not charges:
            return ""
        charge = str(charges.pop(0))
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(charges))
        handle.flush()
        os.fsync(handle.fileno())
        return charge


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--charges", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the agent's own command after --")
    charge = take_charge(args.charges)
    if charge:
        entry = {
            "charge": charge,
            "task": int(os.environ.get("HIVE_TASK_ID") or 0),
            "attempt": int(os.environ.get("HIVE_ATTEMPT") or 0),
            "at": time.time(),
        }
        with open(args.log, "a", encoding="utf-8") as log:
            log.write(json.dumps(entry) + "\n")
    if charge == "fail":
        print("injected failure (validate_hive agent fault)", file=sys.stderr)
        return 1
    if charge == "hang":
        print("injected hang (validate_hive agent fault): waiting for the timeout", flush=True)
        while True:
            time.sleep(3600)
    os.execvp(command[0], command)
    return 127  # not reached: exec replaced this program


if __name__ == "__main__":
    raise SystemExit(main())
