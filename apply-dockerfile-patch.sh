#!/bin/sh
# Install skillsyncd into the Dockerfile in the current directory: one command, no hand edit.
# Usage, next to the Dockerfile, with this repository in the build context as skillsyncd/:
#     sh skillsyncd/apply-dockerfile-patch.sh [--check]
# It reads the Dockerfile, finds the command its final stage starts, appends the block in
# Dockerfile.patch at the end with that command carried into supervisord's gateway program,
# and prints one line saying what it found and what it changed. --check changes nothing; a
# second run changes nothing. Exit 0: done (or, with --check, would be done); 2: the
# Dockerfile cannot take the block (the line says why), nothing changed.
#
# The work is done by `python -m skillsyncd.container` from this checkout, with python3 and
# PyPI's dockerfile-parse. The first python3 found that imports dockerfile_parse runs it:
# SKILLSYNC_INSTALL_PYTHON if set, else python3 on PATH; failing both, a venv is made
# once under ${XDG_CACHE_HOME:-$HOME/.cache}/skillsyncd-install with the dockerfile-parse
# version and hashes pinned in constraints.txt (a one-time download from PyPI).
set -eu
here="$(cd "$(dirname "$0")" && pwd)"

imports_parser() {
    "$1" -c 'import dockerfile_parse' >/dev/null 2>&1
}

pick_python() {
    if [ -n "${SKILLSYNC_INSTALL_PYTHON:-}" ]; then
        echo "$SKILLSYNC_INSTALL_PYTHON"
        return
    fi
    if command -v python3 >/dev/null 2>&1 && imports_parser python3; then
        echo python3
        return
    fi
    venv="${XDG_CACHE_HOME:-$HOME/.cache}/skillsyncd-install"
    if ! imports_parser "$venv/bin/python"; then
        req="$(mktemp)"
        # dockerfile-parse's entry in the lock: its pin line and the hash lines that follow it.
        awk '/^dockerfile-parse==/ {on = 1} on {print} on && !/\\$/ {exit}' "$here/constraints.txt" >"$req"
        python3 -m venv "$venv" >&2
        "$venv/bin/pip" install --quiet --disable-pip-version-check --require-hashes -r "$req" >&2
        rm -f "$req"
    fi
    echo "$venv/bin/python"
}

python="$(pick_python)"
PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" exec "$python" -m skillsyncd.container "$@"
