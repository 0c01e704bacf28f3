#!/usr/bin/env bash
# Run the whole suite: lint, migrations check, tests. Extra arguments go to pytest.
source "$(dirname "$0")/_venv.sh" requirements-dev.txt
echo "== ruff"
.venv/bin/ruff check .
echo "== lint-imports (layer contracts in pyproject.toml)"
.venv/bin/lint-imports --no-cache --no-logo
echo "== makemigrations --check"
.venv/bin/python manage.py makemigrations --check --dry-run
echo "== pytest (database: ${DATABASE_URL:-sqlite}, channel layer: ${REDIS_URL:-in-memory})"
exec .venv/bin/python -m pytest "$@"
