"""Training step time and peak memory on CPU, as ratios to a baseline measured in the same run.

Each configuration runs in a fresh subprocess (so its peak memory is its own): a reduced-depth FLUX
transformer of real width (default hidden 3072, 24 heads, 1 double + 1 single block, random weights),
the core's tiny VAE and text encoders (so the transformer dominates), the fixture recognizer, the
tiny training set from the insightface wheel (see tests/train/conftest.py), float32.
Time: median of ``--steps`` optimizer steps after one warm-up step. Peak memory: the process's peak
resident set size (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) minus the RSS after the models were
built (so it counts activations, gradients and optimizer state).

    python benchmarks/train_step.py [--hidden 3072] [--resolution 256] [--steps 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIGS = {  # name -> config overrides; the first is the baseline
    "baseline (no checkpointing, face loss, 1 identity)": ["model.gradient_checkpointing=false"],
    "gradient checkpointing": ["model.gradient_checkpointing=true"],
    "no face loss": ["model.gradient_checkpointing=false", "loss.face_weight=0.0"],
    "2 identities": ["model.gradient_checkpointing=false", "identities=2"],
}


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(hidden: int, resolution: int, steps: int, overrides: list[str]) -> dict:
    sys.path[:0] = [str(REPO), str(REPO / "tests" / "train"), str(REPO / "tests")]
    import torch
    from conftest import write_tiny_manifest
    from fixtures.face_models import build_tiny_recognizer

    from anyphoto_core.app.models.tiny import TINY_FLUX, ensure_tiny_models
    from anyphoto_core.flux import Flux, FluxParams
    from train.config import load_config
    from train.manifest import Manifest, read_manifest
    from train.models import build_models
    from train.trainer import Trainer

    identities = 1
    if "identities=2" in overrides:
        overrides, identities = [o for o in overrides if o != "identities=2"], 2
    tmp = Path(tempfile.mkdtemp())
    rec = build_tiny_recognizer(tmp / "rec.onnx")
    manifest = read_manifest(write_tiny_manifest(tmp, rec))
    images = tuple(r for r in manifest.images if len(r.faces) == identities)  # t1.jpg with 1 or 2 faces
    manifest = Manifest(manifest.galleries, images)
    cfg = load_config(
        REPO / "train" / "configs" / "tiny.yaml",
        [
            f"model.tiny_dir={ensure_tiny_models(tmp / 'tiny')}",
            f"model.recognizer={rec}",
            f"run.output={tmp / 'run'}",
            "run.cpu=true",
            "run.checkpoint_every=0",
            "run.log_every=100000",
            f"data.resolution={resolution}",
            "data.id_dropout=0.0",
            "model.projector_hidden=3072",
            "model.rank=16",
            "model.alpha=16.0",
            *overrides,
        ],
    )
    models = build_models(cfg.model)
    torch.manual_seed(0)
    models.flux = (
        Flux(
            FluxParams.tiny(
                hidden_size=hidden,
                num_heads=hidden // 128,
                depth=1,
                depth_single_blocks=1,
                context_in_dim=TINY_FLUX.context_in_dim,
                vec_in_dim=TINY_FLUX.vec_in_dim,
            )
        )
        .requires_grad_(False)
        .eval()
    )
    trainer = Trainer(cfg, manifest=manifest, models=models)
    base_rss = _rss_mib()
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        trainer.train_step()
        times.append(time.perf_counter() - start)
    return {
        "seconds": statistics.median(times[1:]),
        "peak_mib": _rss_mib() - base_rss,
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hidden", type=int, default=3072)
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.hidden, args.resolution, args.steps, json.loads(args.worker))))
        return
    tokens = (args.resolution // 16) ** 2
    print(f"hidden {args.hidden}, 1 double + 1 single block, {args.resolution}px = {tokens} image tokens, fp32, CPU")
    results = {}
    for name, overrides in CONFIGS.items():
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--hidden",
                str(args.hidden),
                "--resolution",
                str(args.resolution),
                "--steps",
                str(args.steps),
                "--worker",
                json.dumps(overrides),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
    base = next(iter(results.values()))
    print(f"{'configuration':52s} {'step s':>8s} {'time x':>7s} {'peak MiB':>9s} {'memory x':>8s}")
    for name, r in results.items():
        print(
            f"{name:52s} {r['seconds']:8.2f} {r['seconds'] / base['seconds']:7.2f} {r['peak_mib']:9.0f} "
            f"{r['peak_mib'] / base['peak_mib']:8.2f}"
        )


if __name__ == "__main__":
    main()
