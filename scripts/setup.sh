#!/bin/sh
# Creates ./.venv and installs snnc into it with its test tools. Safe to re-run.
#
#   SNNC_PYTHON  the Python to build the venv with (default: python3)
#   SNNC_TORCH   the torch requirement to install first (default: torch==2.13.0);
#                "skip" keeps the torch already visible (e.g. with
#                SNNC_VENV_ARGS=--system-site-packages on a CUDA box)
#   SNNC_VENV_ARGS  extra arguments for `python -m venv`
set -eu
cd "$(dirname "$0")/.."
PY=${SNNC_PYTHON:-python3}
TORCH=${SNNC_TORCH:-torch==2.13.0}
if [ ! -x .venv/bin/python ]; then
    echo "snnc setup: creating .venv" >&2
    # shellcheck disable=SC2086
    "$PY" -m venv ${SNNC_VENV_ARGS:-} .venv
fi
PIP=".venv/bin/python -m pip install --quiet --disable-pip-version-check"
# torch first, so that nothing below pulls a different (multi-GB) build.
if [ "$TORCH" != "skip" ]; then
    echo "snnc setup: installing $TORCH" >&2
    $PIP "$TORCH"
fi
# numpy explicitly: torch does not pull it, and Triton's CPU interpreter needs it.
$PIP numpy
echo "snnc setup: installing snnc and its test tools" >&2
$PIP -e ".[test]"
echo "snnc setup: done (.venv/bin/snnc)" >&2
