"""``python -m train.miniworld COMMAND``: build the MiniWorld, train its models, evaluate, render.

Commands (see docs/miniworld.md): ``generate``, ``train-vae``, ``train-recognizer``, ``manifest``,
``localize-vae``, ``train-base``, ``ship``, ``fit-ablation``, ``eval``, ``render``, ``diagnose``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_WORLD = Path("data/miniworld")
DEFAULT_RUNS = Path("runs/miniworld")


def _threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.miniworld", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="draw the world (reference banks + training scenes)")
    g.add_argument("--out", type=Path, default=DEFAULT_WORLD)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--scenes", type=int, default=2000)
    for name in ("train-vae", "train-recognizer", "train-base"):
        t = sub.add_parser(name, help=f"{name.removeprefix('train-')} of the world (resumes from its checkpoint)")
        t.add_argument("--world", type=Path, default=DEFAULT_WORLD)
        t.add_argument("--out", type=Path, default=DEFAULT_RUNS / name.removeprefix("train-"))
        t.add_argument("--steps", type=int, default=None)
        t.add_argument("--seed", type=int, default=0)
        t.add_argument("--threads", type=int, default=1)
        if name == "train-vae":
            t.add_argument("--init", type=Path, help="vae.safetensors to fine-tune (default: random weights)")
        if name == "train-base":
            t.add_argument("--vae", type=Path, default=DEFAULT_RUNS / "vae" / "vae.safetensors")
            t.add_argument("--latents", type=Path, help="scene-latent cache, read if it exists (then no world or VAE)")
            t.add_argument("--hidden", type=int, default=96, help="width, a multiple of 32 (heads of 32)")
            t.add_argument("--depth", type=int, default=2, help="double blocks")
            t.add_argument("--single-depth", type=int, default=2, help="single blocks")
            t.add_argument("--batch", type=int, default=16)
            t.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    lv = sub.add_parser(
        "localize-vae", help="fine-tune the VAE encoder: face-cell latents independent of the surroundings"
    )
    lv.add_argument("--world", type=Path, default=DEFAULT_WORLD, help="world folder with manifest.jsonl")
    lv.add_argument("--init", type=Path, default=DEFAULT_RUNS / "vae" / "vae.safetensors", help="VAE to fine-tune")
    lv.add_argument("--out", type=Path, default=DEFAULT_RUNS / "vae-local")
    lv.add_argument("--steps", type=int, default=None)
    lv.add_argument("--seed", type=int, default=0)
    lv.add_argument("--lr", type=float, default=5e-4)
    lv.add_argument("--threads", type=int, default=1)
    m = sub.add_parser("manifest", help="embed the training references and write the trainer manifest")
    m.add_argument("--world", type=Path, default=DEFAULT_WORLD)
    m.add_argument("--recognizer", type=Path, default=DEFAULT_RUNS / "recognizer" / "recognizer.onnx")
    f = sub.add_parser("fit-ablation", help="train one ablation with the normal trainer (see ablations.py)")
    f.add_argument("name")
    d = sub.add_parser("diagnose", help="VAE ceiling, canvas-token locality and the adapter's face-token loss gap")
    d.add_argument("--models", type=Path, required=True, help="MiniWorld model folder")
    d.add_argument("--adapter", type=Path, help="adapter file whose face-token gap to measure (a fresh one always is)")
    d.add_argument("--json", type=Path, required=True)
    d.add_argument("--cases", type=int, default=8, help="held-out cases per people count (2, 3) for the accuracies")
    d.add_argument("--all-visible", action="store_true", help="the adapter was trained with model.isolate=false")
    d.add_argument("--only", choices=["denoised"], help="run only the denoised identity accuracy (needs --adapter)")
    e = sub.add_parser("eval", help="evaluate the shipped models on held-out people (JSON rows)")
    e.add_argument("--json", type=Path, required=True)
    e.add_argument("--models", type=Path, help="MiniWorld model folder (default: the shipped set)")
    e.add_argument("--cases", type=int, default=8, help="cases per people count (1-4)")
    e.add_argument("--seed", type=int, default=0, help="world seed")
    e.add_argument("--figure", type=Path, help="also save a picture grid of the first cases")
    e.add_argument(
        "--id-guidance",
        type=float,
        default=1.0,
        help="identity guidance scale for the configs with identities (1 = one pass, the paper's setting)",
    )
    r = sub.add_parser("render", help="draw a reference photo of held-out person K (+ landmarks sidecar)")
    r.add_argument("--identity", type=int, required=True, help="index among the held-out people (0-59)")
    r.add_argument("--seed", type=int, default=0, help="photo number (pose, expression, style)")
    r.add_argument("--out", type=Path, required=True)
    s = sub.add_parser("ship", help="copy trained world models (and adapters) into the shipped folder")
    s.add_argument("--runs", type=Path, default=DEFAULT_RUNS)
    s.add_argument("--adapter", type=Path, help="adapter run folder (holds anyphoto_adapter.safetensors)")
    s.add_argument("--ablation", help="ship --adapter as this ablation row instead of the main adapter")
    s.add_argument("--all-visible", action="store_true", help="the ablation was trained with model.isolate=false")
    s.add_argument("--command-line", default="", help="training command recorded in provenance.json")
    args = parser.parse_args(argv)

    if args.command == "generate":
        from .generate import write_world
        from .world import WorldSpec

        print(write_world(args.out, WorldSpec(seed=args.seed, scenes=args.scenes)))
        return 0
    if args.command == "manifest":
        from .generate import write_training_manifest

        print(write_training_manifest(args.world, args.recognizer))
        return 0
    if args.command == "fit-ablation":
        from ..__main__ import main as train_main
        from .ablations import ablation_args

        return train_main(ablation_args(args.name))
    if args.command == "diagnose":
        import json

        from .diagnose import diagnose

        if args.only == "denoised":
            if args.adapter is None:
                parser.error("--only denoised needs --adapter")
            from .diagnose import denoised_identity_accuracy

            _threads(1)
            rows = denoised_identity_accuracy(args.models, args.adapter, args.cases, isolate=not args.all_visible)
            result = {"models": str(args.models), "adapter": str(args.adapter), "denoised_identity_accuracy": rows}
        else:
            result = diagnose(args.models, args.adapter, args.cases, isolate=not args.all_visible)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
        print(json.dumps(result, indent=1))
        return 0
    if args.command in ("eval", "render", "ship"):
        return _apps(args)
    _threads(args.threads)
    if args.command == "train-vae":
        from .vae import train_vae

        print(train_vae(args.world, args.out, steps=args.steps, seed=args.seed, init=args.init))
    elif args.command == "train-recognizer":
        from .recognizer import train_recognizer

        print(train_recognizer(args.world, args.out, steps=args.steps, seed=args.seed))
    elif args.command == "localize-vae":
        from .locality import localize_vae

        print(
            localize_vae(
                args.world / "manifest.jsonl", args.init, args.out, steps=args.steps, seed=args.seed, lr=args.lr
            )
        )
    elif args.command == "train-base":
        from .base import base_params, train_base

        params = base_params(args.hidden, args.depth, args.single_depth)
        print(
            train_base(
                args.world,
                args.vae,
                args.out,
                steps=args.steps,
                seed=args.seed,
                batch=args.batch,
                params=params,
                device=args.device,
                latents=args.latents,
            )
        )
    return 0


def _apps(args) -> int:
    if args.command == "eval":
        _threads(1)
        from .evaluate import run_eval

        run_eval(args.json, args.models, args.cases, args.seed, args.figure, args.id_guidance)
    elif args.command == "render":
        from PIL import Image

        from .ship import write_landmarks
        from .world import WorldSpec, people, reference_photo

        heldout = [p for p in people(WorldSpec()) if p.split == "heldout"]
        if not 0 <= args.identity < len(heldout):
            print(f"error: --identity must be in 0..{len(heldout) - 1}", file=sys.stderr)
            return 2
        scene = reference_photo(WorldSpec(), heldout[args.identity], args.seed)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(scene.image).save(args.out)
        print(f"wrote {args.out} ({scene.style}) and {write_landmarks(args.out, scene.landmarks[0])}")
    else:
        from .ship import ship_adapter, ship_world_models, write_demo

        if args.adapter is None:
            ship_world_models(args.runs)
            print(write_demo())
        else:
            print(ship_adapter(args.adapter, args.ablation, not args.all_visible, args.command_line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
