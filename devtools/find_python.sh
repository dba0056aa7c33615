#!/usr/bin/env bash
# Print the path of a working Python 3.13 interpreter on stdout.
#
# Order of preference:
#   1. $PYTHON, if set and it really runs Python 3.13;
#   2. python3.13 on PATH, if it really runs (a pyenv shim on PATH may exist
#      but fail unless a 3.13 version is selected, so it must be executed);
#   3. a pyenv-installed 3.13: $(pyenv root)/versions/3.13*/bin/python3.13.
# Exits non-zero with a message on stderr when none is found.
set -euo pipefail

is_py313() {
    local candidate="$1"
    [ -n "$candidate" ] || return 1
    "$candidate" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 13) else 1)' \
        >/dev/null 2>&1
}

resolve() {
    # Print the real executable behind a candidate (resolves pyenv shims too).
    "$1" -c 'import sys; print(sys.executable)'
}

if [ -n "${PYTHON:-}" ] && is_py313 "$PYTHON"; then
    resolve "$PYTHON"
    exit 0
fi

if command -v python3.13 >/dev/null 2>&1 && is_py313 python3.13; then
    resolve python3.13
    exit 0
fi

if command -v pyenv >/dev/null 2>&1; then
    pyenv_root="$(pyenv root 2>/dev/null || true)"
    if [ -n "$pyenv_root" ] && [ -d "$pyenv_root/versions" ]; then
        # Newest patch release first.
        for candidate in $(ls -d "$pyenv_root"/versions/3.13*/bin/python3.13 2>/dev/null \
                           | sort -rV); do
            if is_py313 "$candidate"; then
                resolve "$candidate"
                exit 0
            fi
        done
    fi
fi

cat >&2 <<'MSG'
error: no working Python 3.13 interpreter found.
  Tried: $PYTHON, python3.13 on PATH, and pyenv versions 3.13*.
  Install Python 3.13 (for example `pyenv install 3.13`) or point PYTHON at one:
    make venv PYTHON=/path/to/python3.13
MSG
exit 1
