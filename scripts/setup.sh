#!/usr/bin/env bash
# Install what mailbot needs on a fresh Debian/Ubuntu machine and make .venv.
# Idempotent: re-running only installs what is missing.
#   scripts/setup.sh            runtime + demo
#   scripts/setup.sh --dev      also the test and lint tools
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  tesseract-ocr tesseract-ocr-nor tesseract-ocr-swe tesseract-ocr-dan tesseract-ocr-fin
  dovecot-imapd poppler-utils python3-venv fonts-dejavu-core
)
if [[ "${1:-}" == "--dev" ]]; then
  APT_PACKAGES+=(systemd)   # for systemd-analyze verify in the tests
  APT_PACKAGES+=(chromium chromium-driver)   # the browser tests (tests/browser)
fi

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  # policy-rc.d style: we never want the distribution's own dovecot service running.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi
# Debian starts its own Dovecot on 143/993 when it can; mailbot's demo and tests
# start private ones on free loopback ports, so the system one is not needed.

PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
if [[ "${1:-}" == "--dev" ]]; then
  .venv/bin/python -m pip install -q -e ".[dev,postgres,demo]"
else
  .venv/bin/python -m pip install -q -e ".[demo]"
fi
echo "setup: ready (.venv/bin/mailbot)"
