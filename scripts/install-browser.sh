#!/usr/bin/env bash
# Installs what the console's browser tests (tests/test_ui.py) drive: Debian's Chromium (apt, as root) and the
# Playwright package (the `ui-test` extra) into ./.venv (or $VENV). Playwright's own browser download is never
# used: the tests launch /usr/bin/chromium. Without root or apt, it says so and the browser tests skip.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
if [ -x /usr/bin/chromium ]; then
  echo "chromium: $(/usr/bin/chromium --version 2>/dev/null || echo present)"
elif [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  echo "chromium installed: $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"
else
  echo "chromium not installed (needs root and apt-get); the browser tests will skip"
fi
if [ -x "$VENV/bin/pip" ]; then
  "$VENV/bin/pip" install -q --disable-pip-version-check -e '.[ui-test]'
  echo "playwright installed in $VENV"
fi
