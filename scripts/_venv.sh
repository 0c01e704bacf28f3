# Sourced by the scripts: make sure .venv exists and holds what $1 lists, saying what it does.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
REQ="${1:-requirements.txt}"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "Creating the virtual environment in .venv …"
  "$PY" -m venv .venv
fi
# Reinstall only when the requirement files changed since the last install.
STAMP=".venv/.installed-$(basename "$REQ")"
if [ ! -f "$STAMP" ] || [ "$REQ" -nt "$STAMP" ] || [ requirements.txt -nt "$STAMP" ]; then
  started=$SECONDS
  # uv (from PyPI) installs in parallel, several times faster than pip; pip is the fallback
  # when uv cannot be had (offline with only a pip cache, an unsupported platform).
  if [ "${HIVE_INSTALLER:-uv}" = uv ] && { .venv/bin/python -m uv --version >/dev/null 2>&1 \
      || { echo "Getting the uv installer from PyPI …"; \
           .venv/bin/python -m pip install --quiet --disable-pip-version-check uv >/dev/null 2>&1; }; }; then
    echo "Installing $REQ with uv (first time: about 10-20 s) …"
    .venv/bin/python -m uv pip install --python .venv/bin/python -r "$REQ" 2>&1 | sed -u 's/^/  /'
  else
    echo "Installing $REQ with pip (first time: about a minute) …"
    .venv/bin/python -m pip install --disable-pip-version-check --progress-bar off -r "$REQ" 2>&1 \
      | { grep --line-buffered -E '^(Collecting|Installing|Successfully|ERROR)' || true; } | sed -u 's/^/  /'
  fi
  echo "Installed in $((SECONDS - started)) s."
  touch "$STAMP"
fi
