"""``python -m train preprocess ...`` / ``python -m train fit ...`` (also under ``accelerate launch -m train``)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path


def _preprocess(args) -> int:
    from .preprocess import AnalyzerSpec, PreprocessJob, list_photos, list_references, preprocess

    images = list_photos(Path(args.images) if args.images else None, Path(args.file_list) if args.file_list else None)
    job = PreprocessJob(
        images=tuple(images),
        refs=tuple(list_references(Path(args.refs))),
        out=Path(args.out),
        analyzer=AnalyzerSpec(args.face_models, args.pack, args.recognizer),
        shard_size=args.shard_size,
        iou_weight=args.iou_weight,
        min_score=args.min_score,
        allow_missing_captions=args.allow_missing_captions,
    )
    rank, world, _ = process_rank()
    summary = preprocess(job, rank, world, args.workers)
    if summary is not None:
        print(f"wrote {args.out}: " + json.dumps(summary))
    return 0


def _resume_checkpoint(resume: str | None, root: Path) -> Path | None:
    """The checkpoint ``--resume`` asks for: None (no flag; ``auto`` with none yet), the latest one
    (``--resume`` / ``latest`` / ``auto``) or a folder. :class:`CheckpointError` when the asked one is missing."""
    from .checkpoint import CheckpointError, latest_checkpoint

    if resume is None:
        return None
    if resume in ("latest", "auto"):
        found = latest_checkpoint(root)
        if found is None and resume == "latest":
            raise CheckpointError(
                f"--resume: no checkpoint under {root} (no 'latest' pointer). To start a new run drop --resume; "
                "to resume when a checkpoint exists and start otherwise (preemptible jobs) use --resume auto"
            )
        return found
    path = Path(resume)
    if not path.is_dir():
        raise CheckpointError(f"--resume {path}: no such checkpoint folder (expected <run.output>/checkpoints/step-N)")
    return path


def _fit(args) -> int:
    from .config import load_config
    from .trainer import Trainer

    if args.resume and "=" in args.resume and not Path(args.resume).is_dir():  # `--resume key=value`: an override
        args.override, args.resume = [args.resume, *args.override], "latest"
    config = load_config(args.config, args.override)
    checkpoint = _resume_checkpoint(args.resume, Path(config.run.output) / "checkpoints")
    trainer = Trainer(config)
    if checkpoint is not None:
        trainer.resume(checkpoint)
        print(f"resumed at step {trainer.step} from {trainer.last_checkpoint}")
    trainer.fit()
    if config.run.checkpoint_every:
        trainer.save()
    out = trainer.export(args.adapter_out or f"{config.run.output}/anyphoto_adapter.safetensors")
    trainer.close()
    if trainer.accelerator.is_main_process:
        print(f"adapter written to {out}")
    return 0


def process_rank() -> tuple[int, int, int]:
    """``(rank, world, local_rank)`` of this process: what ``accelerate launch``/``torchrun`` set, else one process."""
    env = os.environ
    return int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0))


def _encode_text(args) -> int:
    import torch

    from .config import ConfigError, load_config
    from .manifest import read_manifest
    from .models import load_text_encoders_for
    from .text_cache import encode_captions, training_captions

    config = load_config(args.config, args.override)
    mc = config.model
    if not mc.text_cache:
        raise ConfigError("encode-text needs model.text_cache (the folder to fill)")
    rank, world, local = process_rank()
    cuda = torch.cuda.is_available() and not config.run.cpu
    device = f"cuda:{local}" if cuda else "cpu"
    encoders = load_text_encoders_for(mc, device, torch.bfloat16 if cuda else torch.float32)
    captions = training_captions(read_manifest(config.data.manifest), config.data)
    done = encode_captions(
        captions, encoders.encode, mc.text_cache, mc.t5_min_length, mc.t5_max_length, rank, world, args.shard_size
    )
    print(f"rank {rank}/{world}: encoded {done} captions into {mc.text_cache}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train", description="AnyPhoto offline trainer")
    sub = parser.add_subparsers(dest="command", required=True)
    pre = sub.add_parser(
        "preprocess",
        help="build a manifest from photos + per-identity reference folders (sharded over launched processes "
        "and --workers, resumable)",
    )
    photos = pre.add_mutually_exclusive_group(required=True)
    photos.add_argument("--images", help="folder of training photos (searched recursively)")
    photos.add_argument("--file-list", help="text file, one photo path a line (relative to the list's folder)")
    pre.add_argument("--refs", required=True, help="one subfolder per identity")
    pre.add_argument("--out", required=True, help="manifest to write (work files in <out>.parts/)")
    pre.add_argument("--workers", type=int, default=1, help="local processes per launched process")
    pre.add_argument("--shard-size", type=int, default=1000, help="photos per shard (the unit of resume)")
    pre.add_argument(
        "--allow-missing-captions", action="store_true", help="photos without <stem>.txt get an empty caption"
    )
    pre.add_argument("--face-models", help="insightface root holding models/<pack>")
    pre.add_argument("--pack", default="antelopev2")
    pre.add_argument("--recognizer", help="ArcFace ONNX; with CenterFace detection when no --face-models")
    pre.add_argument("--iou-weight", type=float, default=0.5)
    pre.add_argument("--min-score", type=float, default=0.3)
    enc = sub.add_parser(
        "encode-text", help="fill model.text_cache with the manifest's captions (sharded over launched processes)"
    )
    enc.add_argument("--config", help="YAML config (the one `fit` will use)")
    enc.add_argument("--shard-size", type=int, default=1024, help="captions per shard file")
    enc.add_argument("override", nargs="*", help="config overrides section.key=value")
    fit = sub.add_parser("fit", help="train an adapter")
    fit.add_argument("--config", help="YAML config (train/configs/*.yaml)")
    fit.add_argument(
        "--resume",
        nargs="?",
        const="latest",
        help="resume: no value = the latest checkpoint (an error if there is none), 'auto' = the latest one if any "
        "(else start fresh), or a checkpoint folder",
    )
    fit.add_argument("--adapter-out", help="final adapter path (default <run.output>/anyphoto_adapter.safetensors)")
    fit.add_argument("override", nargs="*", help="config overrides section.key=value")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from .checkpoint import CheckpointError
    from .config import ConfigError
    from .manifest import ManifestError
    from .text_cache import TextCacheError

    try:
        return {"preprocess": _preprocess, "encode-text": _encode_text, "fit": _fit}[args.command](args)
    except (ConfigError, CheckpointError, ManifestError, TextCacheError) as exc:  # user errors: no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
