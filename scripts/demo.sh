#!/usr/bin/env bash
# Set up and run the demo: a private Dovecot mailbox and SMTP sink on loopback,
# SQLite, sample customer mails processed, and the resulting tables printed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/mailbot --log-format text --log-level WARNING demo "$@"
