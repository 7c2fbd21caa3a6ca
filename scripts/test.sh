#!/usr/bin/env bash
# Set up (apt packages, .venv, the project) and run every check and test.
# This is the README's test command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --dev

# PostgreSQL is tested for real when a server answers on 127.0.0.1:5432.
if command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  if command -v pg_ctlcluster >/dev/null && ls /etc/postgresql >/dev/null 2>&1; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
fi

echo "== ruff"
.venv/bin/ruff check mailbot parsers tests bench
.venv/bin/ruff format --check mailbot parsers tests bench
echo "== mypy"
.venv/bin/mypy mailbot parsers
echo "== pytest"
.venv/bin/python -m pytest -ra "$@"
