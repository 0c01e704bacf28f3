#!/usr/bin/env bash
# Start Agent Hive on the embedded default: SQLite, no Redis, a demo crew at work.
#
#   ./scripts/start.sh            web server on http://127.0.0.1:8000 + coordinator + demo crew
#
# Environment: HIVE_PORT (8000), SQLITE_PATH (var/hive.sqlite3), HIVE_WORKSPACE_ROOT
# (var/workspaces), HIVE_OPERATOR_PASSWORD (else one is generated), HIVE_CREDENTIALS_FILE
# (var/operator-credentials.txt), HIVE_LOG_DIR (var/log). Ctrl-C or SIGTERM stops everything.
source "$(dirname "$0")/_venv.sh" requirements.txt
set -euo pipefail

PY=.venv/bin/python
PORT="${HIVE_PORT:-8000}"
LOG_DIR="${HIVE_LOG_DIR:-var/log}"
WORKSPACE_ROOT="${HIVE_WORKSPACE_ROOT:-var/workspaces}"
CREDENTIALS="${HIVE_CREDENTIALS_FILE:-var/operator-credentials.txt}"
TEAM_FILE="$WORKSPACE_ROOT/demo-team.json"
export PYTHONUNBUFFERED=1 HIVE_CREDENTIALS_FILE="$CREDENTIALS"
mkdir -p var "$LOG_DIR" "$WORKSPACE_ROOT"

# One Python process for every set-up step: starting Django costs seconds, so pay it once.
echo "[${SECONDS} s] Preparing the database (${DATABASE_URL:-SQLite ${SQLITE_PATH:-var/hive.sqlite3}}) …"
"$PY" - "$TEAM_FILE" <<'SETUP'
import os
import sys
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hive_project.settings")
django.setup()
from django.core.management import call_command  # noqa: E402

started = time.monotonic()
call_command("migrate", interactive=False, verbosity=0)
print(f"Database ready ({time.monotonic() - started:.0f} s). Collecting static files …", flush=True)
call_command("collectstatic", interactive=False, verbosity=0)
call_command("ensure_operator")
print("Setting up the demo crew's repository …", flush=True)
call_command("demo", config_out=sys.argv[1])
SETUP

children=()
stopping=0
stop() {
  [ "$stopping" = 1 ] && return
  stopping=1
  trap - INT TERM
  echo
  echo "Stopping Agent Hive …"
  kill -TERM "${children[@]}" 2>/dev/null || true
  # The coordinator may take its grace period to finish or hand back running work.
  for _ in $(seq 60); do
    alive=0
    for pid in "${children[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.5
  done
  kill -KILL "${children[@]}" 2>/dev/null || true
  wait || true
  echo "Stopped."
}
trap 'stop; exit 0' INT TERM

URL="http://127.0.0.1:$PORT/"
echo "[${SECONDS} s] Starting the web server …"
"$PY" -m daphne -b 127.0.0.1 -p "$PORT" --access-log "$LOG_DIR/access.log" hive_project.asgi:application \
  >>"$LOG_DIR/web.log" 2>&1 &
children+=($!)
# The console first: the coordinator and the demo feed start once it answers, so they do not
# compete with the web server for the CPU while it starts.
for _ in $(seq 240); do
  if command -v curl >/dev/null 2>&1; then
    curl -fs -o /dev/null --max-time 1 "${URL}accounts/login/" && break
  else
    "$PY" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)" "${URL}accounts/login/" \
      2>/dev/null && break
  fi
  kill -0 "${children[0]}" 2>/dev/null || { echo "The web server did not start; see $LOG_DIR/web.log." >&2; exit 1; }
  sleep 0.25
done
echo "[${SECONDS} s] Console up; starting the coordinator and the demo feed …"
# Process substitution keeps $! the Python process itself, so signals reach it, not a pipe.
"$PY" manage.py run_coordinator --team "$TEAM_FILE" > >(sed -u 's/^/[coordinator] /') 2>&1 &
children+=($!)
"$PY" manage.py demo --feed > >(sed -u 's/^/[demo feed] /') 2>&1 &
children+=($!)

WORKSPACE="$("$PY" -c "import json, sys; print(json.load(open(sys.argv[1]))['workspace'])" "$TEAM_FILE")"
LOGIN="(your existing operator login)"
if [ -f "$CREDENTIALS" ]; then
  LOGIN="$(sed -n 's/^username=//p' "$CREDENTIALS") / $(sed -n 's/^password=//p' "$CREDENTIALS")"
fi
cat <<BANNER

  Agent Hive is running:  $URL   (ready after ${SECONDS} s)
    console   $URL
    admin     ${URL}admin/
    login     $LOGIN   (saved in $CREDENTIALS)
    crew      working in $WORKSPACE   (git -C … log shows its commits)
    logs      $LOG_DIR/web.log, $LOG_DIR/access.log
  Ctrl-C stops the web server, the coordinator and the demo feed.

BANNER

# Any child ending on its own (a crash, a port in use) stops the rest too.
status=0
wait -n || status=$?
if [ "$stopping" = 0 ]; then
  echo "A process of Agent Hive exited (status $status); stopping the others." >&2
  stop
  exit 1
fi
