"""``python -m train preprocess ...`` / ``python -m train fit ...`` (also under ``accelerate launch -m train``)."""

from __future__ import annotations

import argparse
import logging
import sys


def _preprocess(args) -> int:
    from anyphoto_core.faces import load_centerface_analyzer, load_face_analyzer

    from .manifest import build_manifest, write_manifest

    if args.face_models:
        analyzer = load_face_analyzer(args.face_models, args.pack)
    elif args.recognizer:
        analyzer = load_centerface_analyzer(args.recognizer)
    else:
        print(
            "error: give --face-models (folder with models/antelopev2) or --recognizer (ONNX, CenterFace detector)",
            file=sys.stderr,
        )
        return 2
    manifest = build_manifest(args.images, args.refs, analyzer, args.iou_weight, args.min_score)
    write_manifest(args.out, manifest)
    faces = sum(len(r.faces) for r in manifest.images)
    print(f"wrote {args.out}: {len(manifest.galleries)} identities, {len(manifest.images)} images, {faces} faces")
    return 0


def _fit(args) -> int:
    from .config import load_config
    from .trainer import Trainer

    config = load_config(args.config, args.override)
    trainer = Trainer(config)
    if args.resume and trainer.resume(None if args.resume == "latest" else args.resume):
        print(f"resumed at step {trainer.step} from {trainer.last_checkpoint}")
    trainer.fit()
    if config.run.checkpoint_every:
        trainer.save()
    out = trainer.export(args.adapter_out or f"{config.run.output}/anyphoto_adapter.safetensors")
    trainer.close()
    if trainer.accelerator.is_main_process:
        print(f"adapter written to {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train", description="AnyPhoto offline trainer")
    sub = parser.add_subparsers(dest="command", required=True)
    pre = sub.add_parser("preprocess", help="build a manifest from images + per-identity reference folders")
    pre.add_argument("--images", required=True)
    pre.add_argument("--refs", required=True, help="one subfolder per identity")
    pre.add_argument("--out", required=True)
    pre.add_argument("--face-models", help="insightface root holding models/<pack>")
    pre.add_argument("--pack", default="antelopev2")
    pre.add_argument("--recognizer", help="ArcFace ONNX; with CenterFace detection when no --face-models")
    pre.add_argument("--iou-weight", type=float, default=0.5)
    pre.add_argument("--min-score", type=float, default=0.3)
    fit = sub.add_parser("fit", help="train an adapter")
    fit.add_argument("--config", help="YAML config (train/configs/*.yaml)")
    fit.add_argument("--resume", nargs="?", const="latest", help="resume from a checkpoint folder or the latest one")
    fit.add_argument("--adapter-out", help="final adapter path (default <run.output>/anyphoto_adapter.safetensors)")
    fit.add_argument("override", nargs="*", help="config overrides section.key=value")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return _preprocess(args) if args.command == "preprocess" else _fit(args)


if __name__ == "__main__":
    sys.exit(main())
