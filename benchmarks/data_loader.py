"""Training samples built per second by the DataLoader (``data.workers``), as ratios to building them in the
training process (``workers: 0``) measured in the same round.

Data: the tiny training set from the insightface wheel (tests/train/conftest.py: real photos, 1-2 faces), at the
real recipe's sizes (``data.resolution`` 512, ``data.crop_size`` 512, default degradations and curriculum at
step 50k, so half of the faces are replaced by gallery photos). Each measurement builds a fresh
:class:`~train.dataset.SampleBuilder` (no photo cache carried over) and takes ``--samples`` samples through
:func:`train.stream.sample_loader`; the rate counts from the first sample delivered to the last (worker start-up
excluded: it is paid once per run). Rounds run every configuration once, in order; the ratio of a configuration
is its rate / the in-process rate of the same round. Prints min/median/max over ``--rounds``.

    python benchmarks/data_loader.py [--workers 0 1 2] [--samples 12] [--rounds 3] [--prefetch 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "train"), str(REPO / "tests")]


def rate(manifest, workers: int, prefetch: int, samples: int, offset: int) -> float:
    from train.config import DataConfig
    from train.dataset import SampleBuilder
    from train.stream import sample_loader

    builder = SampleBuilder(manifest, DataConfig(resolution=512, crop_size=512), seed=0)
    keys = [(offset + i, 50_000) for i in range(samples + 1)]
    stream = sample_loader(builder, keys, workers, prefetch)
    next(stream)
    start = time.perf_counter()
    for _ in range(samples):
        next(stream)
    return samples / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--samples", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--prefetch", type=int, default=2)
    args = parser.parse_args()
    import torch
    from conftest import write_tiny_manifest
    from fixtures.face_models import build_tiny_recognizer

    from train.manifest import read_manifest

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        manifest = read_manifest(write_tiny_manifest(tmp, build_tiny_recognizer(tmp / "rec.onnx")))
        rates: dict[int, list[float]] = {w: [] for w in args.workers}
        ratios: dict[int, list[float]] = {w: [] for w in args.workers}
        for r in range(args.rounds):
            base = None
            for w in args.workers:
                rates[w].append(rate(manifest, w, args.prefetch, args.samples, offset=r * (args.samples + 1)))
                base = rates[w][-1] if base is None else base
                ratios[w].append(rates[w][-1] / base)
    print("| workers | samples/s min / median / max | per worker | x in-process (min / median / max) |")
    print("| ---: | ---: | ---: | ---: |")
    for w in args.workers:
        s, q = sorted(rates[w]), sorted(ratios[w])
        per = f"{statistics.median(s) / w:.2f}" if w else "-"
        print(
            f"| {w} | {s[0]:.2f} / {statistics.median(s):.2f} / {s[-1]:.2f} | {per} | "
            f"{q[0]:.2f} / {statistics.median(q):.2f} / {q[-1]:.2f} |"
        )


if __name__ == "__main__":
    main()
