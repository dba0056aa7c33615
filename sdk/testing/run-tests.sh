#!/usr/bin/env bash
# Both SDKs' suites and the examples' against one local API (`make sdk-test` runs this).
#
#   SDK_PYTHON   interpreter for the SDK's fresh venv (default: the oldest Python >= 3.10 found)
#   SERVER_PY    the repository's .venv Python, which runs the local API
#
# The Python SDK is installed as a user installs it (`pip install ./sdk/python`) into a fresh
# venv, sdk/python/.venv-test; npm installs stay in sdk/typescript and examples/node-chat.
set -euo pipefail
cd "$(dirname "$0")/../.."

SERVER_PY="${SERVER_PY:-.venv/bin/python}"
VENV=sdk/python/.venv-test

find_python() {
  local candidate
  for candidate in "$HOME"/.pyenv/versions/3.10*/bin/python3.10 python3.10 python3.11 python3.12 \
      python3.13 python3; do
    if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 10))' >/dev/null 2>&1; then
      echo "$candidate"
      return
    fi
  done
  echo "error: no Python >= 3.10 found" >&2
  return 1
}

step() { printf '\n== %s (%ss)\n' "$1" "$SECONDS"; }

step "Python SDK: fresh venv, pip install ./sdk/python"
python="${SDK_PYTHON:-$(find_python)}"
rm -rf "$VENV"
"$python" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check ./sdk/python \
  "pytest>=8" "pyyaml>=6" "flask>=3"
"$VENV/bin/python" -c 'import sys, credit_meter_client as c; print("credit-meter", c.__version__, "on Python", sys.version.split()[0])'

step "TypeScript SDK: npm ci, build, pack"
(cd sdk/typescript && npm ci --no-audit --no-fund --loglevel=error && npm run -s build \
  && npm pack --dry-run --loglevel=error >/dev/null)
(cd examples/node-chat && npm ci --no-audit --no-fund --loglevel=error)

step "local API"
coproc HARNESS { exec "$SERVER_PY" sdk/testing/harness.py; }
harness_pid=$HARNESS_PID
stop_harness() {
  kill -TERM "$harness_pid" 2>/dev/null || true  # the harness then stops the server
  wait "$harness_pid" 2>/dev/null || true
}
trap stop_harness EXIT
IFS= read -r -t 240 CM_SDK_API <&"${HARNESS[0]}" || { echo "error: the local API did not start" >&2; exit 1; }
export CM_SDK_API

step "Python SDK tests (installed package)"
(cd sdk/python && "../../$VENV/bin/python" -m pytest tests -q -p no:cacheprovider)

step "TypeScript SDK tests"
(cd sdk/typescript && node --test --test-concurrency=1 test/*.test.mjs)

step "examples/node-chat tests"
(cd examples/node-chat && node --test test/)

step "done"
