"""MiniWorld evaluation on held-out people: is the right person at the right box?

Cases (:func:`train.miniworld.world.eval_case`): 1-4 held-out people at the spots of a ground-truth
scene drawn in a prompted style; each person's references are the bank photos in *other* styles
(one of them, chosen per case, is pasted on the canvas; the identity embedding is the mean over
them, the project convention). Placements are the ground-truth landmarks.

Per generated face ``i`` (aligned crop at person ``i``'s target landmarks, embedded by the world
recognizer, ``anyphoto_core.faces`` + onnxruntime):

* identity accuracy: the nearest enrolled identity (mean of the whole reference bank) among the
  scene's people plus :data:`DISTRACTORS` other held-out people is person ``i``;
* swap: the nearest is another person *of the scene*;
* Sim(Ref), Sim(GT): cosine to the references' embedding / to the ground-truth face at that box;
* copy-paste: MultiID-Bench's score (``anyphoto_core.evaluation.metrics.copy_paste_score``).

Rows: every config (``adapter``, each shipped ablation, ``base`` = no adapter, ``dropped`` = the
adapter with every identity dropped as in training), plus ``ground_truth`` (the recognizer's own
ceiling on the ground-truth scenes) and ``paste`` (the reference faces pasted at the boxes onto the
ground truth), for each people count and for 2-3 people together. Each row records ``id_guidance``, the
identity guidance scale its config was sampled with (``eval --id-guidance``; 1 for rows without identities).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from anyphoto_core.app.models.miniworld import load_miniworld_recognizer, miniworld_dir
from anyphoto_core.app.pipeline import AnyPhotoPipeline, GenerationSettings
from anyphoto_core.app.previews import combined_canvas
from anyphoto_core.conditioning import null_identity_inputs
from anyphoto_core.evaluation.metrics import copy_paste_score, cosine
from anyphoto_core.faces import Detection, FaceRef, Identity, arcface_crop, face_ref_at
from anyphoto_core.geometry import landmarks_to_box
from anyphoto_core.placements import Placement

from .scenes import STYLES, caption_for
from .world import WorldSpec, eval_case, people, reference_photo, reference_style

COUNTS = (1, 2, 3, 4)
DISTRACTORS = 6
STEPS = 12


@dataclass(frozen=True)
class EvalConfig:
    """A row's generator: ``adapter`` file (None = base), ``isolate`` and whether identities are dropped."""

    name: str
    adapter: Path | None
    isolate: bool = True
    dropped: bool = False


class DroppedIdentityPipeline(AnyPhotoPipeline):
    """Identity dropout at inference, exactly as in training: the core's null condition
    (:func:`anyphoto_core.conditioning.null_identity_inputs`: same token positions, zero latents,
    modulation offset ``MLP(0)``)."""

    def identity_inputs(self, identities, placements, size, weights=None):
        inputs, canvases, notices = super().identity_inputs(identities, placements, size, weights)
        return null_identity_inputs(self.adapter, inputs), canvases, notices


def reference_face(spec: WorldSpec, person, k: int, recognizer) -> FaceRef:
    scene = reference_photo(spec, person, k)
    lmk = scene.landmarks[0]
    det = Detection(np.asarray(landmarks_to_box(lmk)), 1.0, lmk)
    return face_ref_at(scene.image, det, recognizer, f"{person.name}/{k}", crop_size=112)


def embed_at(image: np.ndarray, landmarks: np.ndarray, recognizer) -> np.ndarray:
    """L2-normalised recognizer embeddings ``(N, 512)`` of the faces of ``image`` at ``landmarks`` (N, 5, 2)."""
    embs = np.stack([recognizer.embed(arcface_crop(image, lmk)) for lmk in landmarks])
    return embs / np.linalg.norm(embs, axis=1, keepdims=True)


@dataclass
class Tally:
    correct: int = 0
    swaps: int = 0
    faces: int = 0
    cases: int = 0
    sim_ref: float = 0.0
    sim_gt: float = 0.0
    copy_paste: float = 0.0

    def add(self, other: Tally) -> Tally:
        return Tally(*(getattr(self, f) + getattr(other, f) for f in self.__dataclass_fields__))

    def row(self, config: str, people) -> dict:
        n = max(self.faces, 1)
        return {
            "config": config,
            "people": people,
            "cases": self.cases,
            "faces": self.faces,
            "identity_accuracy": round(self.correct / n, 4),
            "swap_rate": round(self.swaps / n, 4),
            "sim_ref": round(self.sim_ref / n, 4),
            "sim_gt": round(self.sim_gt / n, 4),
            "copy_paste": round(self.copy_paste / n, 4),
        }


def score_image(image, landmarks, candidates, ref_embs, gt_embs, recognizer) -> Tally:
    """Scores of the faces of ``image`` at ``landmarks``; ``candidates`` (K, 512): the scene's people first."""
    gen = embed_at(image, landmarks, recognizer)
    tally = Tally(faces=len(gen), cases=1)
    for i, e in enumerate(gen):
        best = int(np.argmax(candidates @ e))
        tally.correct += best == i
        tally.swaps += best != i and best < len(gen)
        tally.sim_ref += cosine(e, ref_embs[i])
        tally.sim_gt += cosine(e, gt_embs[i])
        tally.copy_paste += copy_paste_score(e, gt_embs[i], ref_embs[i])
    return tally


def heldout_bank(spec: WorldSpec, recognizer) -> tuple[list, Callable]:
    """Held-out people and ``bank(person)``: their reference ``FaceRef`` s, embedded once (memoised)."""
    heldout = [p for p in people(spec) if p.split == "heldout"]
    cache: dict[str, list[FaceRef]] = {}

    def bank(person) -> list[FaceRef]:
        if person.name not in cache:
            cache[person.name] = [reference_face(spec, person, k, recognizer) for k in range(spec.references)]
        return cache[person.name]

    return heldout, bank


def case_identities(spec: WorldSpec, n: int, i: int, heldout, bank) -> tuple:
    """Held-out case ``(n, i)``, its people as :class:`Identity` (the case's reference photo first, then the
    bank photos in other styles than the target's) and the candidate embeddings ``(n + DISTRACTORS, 512)``
    (the scene's people first, then distractors). ``bank(person)``: the person's reference ``FaceRef`` s."""
    case = eval_case(spec, n, i, heldout)
    rng = np.random.default_rng([spec.seed, 4, n, i])
    others = [p for p in heldout if p not in case.people]
    distractors = [others[int(k)] for k in rng.choice(len(others), min(DISTRACTORS, len(others)), replace=False)]
    candidates = np.stack([Identity(tuple(bank(p))).embedding for p in (*case.people, *distractors)])
    identities = []
    for p, k in zip(case.people, case.references, strict=True):
        usable = [f for j, f in enumerate(bank(p)) if reference_style(p, j) != case.target.style]
        chosen = bank(p)[k]
        identities.append(Identity((replace(chosen, score=1.0), *[f for f in usable if f is not chosen])))
    return case, identities, candidates


def build_configs(folder: Path) -> list[EvalConfig]:
    """``adapter``, the shipped ablations (``ablations.json``), ``base`` and ``dropped``."""
    configs = [EvalConfig("adapter", folder / "adapter.safetensors")]
    index = folder / "ablations" / "ablations.json"
    if index.is_file():
        for name, entry in json.loads(index.read_text()).items():
            configs.append(EvalConfig(name, folder / "ablations" / entry["file"], isolate=entry.get("isolate", True)))
    configs += [EvalConfig("base", None), EvalConfig("dropped", folder / "adapter.safetensors", dropped=True)]
    return configs


def evaluate(
    folder: Path | None = None,
    cases_per_count: int = 8,
    seed: int = 0,
    configs: list[EvalConfig] | None = None,
    steps: int = STEPS,
    counts: tuple[int, ...] = COUNTS,
    figure: list | None = None,
    figure_cases: int = 2,
    id_guidance: float = 1.0,
) -> list[dict]:
    """Rows (see module doc) over ``cases_per_count`` held-out cases for each people count. When ``figure`` is
    a list, the first ``figure_cases`` cases of each count are appended to it (see :func:`save_figure`).
    ``id_guidance``: the pipeline's identity guidance scale for every config that has identities (``adapter``
    and the ablations; 1 = one pass, the paper's setting); every row records the scale it ran with."""
    folder = miniworld_dir(folder)
    spec = WorldSpec(seed=seed)
    recognizer = load_miniworld_recognizer(folder)
    heldout, bank = heldout_bank(spec, recognizer)
    configs = configs if configs is not None else build_configs(folder)
    base = AnyPhotoPipeline.miniworld(folder=folder, with_adapter=False)

    for style in STYLES:  # every prompt once, before generate() frees the encoders
        for n in COUNTS:
            base.encode_prompt(caption_for(style, n), free_encoders=False)
    pipes = {}
    for c in configs:
        cls = DroppedIdentityPipeline if c.dropped else AnyPhotoPipeline
        adapter = AnyPhotoPipeline._load_adapter(c.adapter, base.flux, "cpu", torch.float32) if c.adapter else None
        pipes[c.name] = cls(
            base.flux, base.vae, base.text_encoders, adapter, base.device, base.dtype, base.files, "miniworld"
        )
        pipes[c.name]._prompt_cache = base._prompt_cache  # one text encoding per prompt for every config
    guidance = {c.name: id_guidance if c.adapter is not None and not c.dropped else 1.0 for c in configs}
    tallies: dict[tuple[str, int], Tally] = {}
    cases = [(n, i) for n in counts for i in range(cases_per_count)]
    for n, i in tqdm(cases, desc="miniworld eval"):
        case, identities, candidates = case_identities(spec, n, i, heldout, bank)
        ref_embs = np.stack([ident.embedding for ident in identities])
        target = case.target
        gt_embs = embed_at(target.image, target.landmarks, recognizer)
        placements = [Placement.from_landmarks(lmk) for lmk in target.landmarks]
        settings = GenerationSettings(target.caption, spec.size, spec.size, steps, case.seed)
        results = {"ground_truth": target.image}
        canvases = None
        for c in configs:
            pipe = pipes[c.name]
            run = replace(settings, isolate=c.isolate, id_guidance=guidance[c.name])
            out = pipe.generate(run, identities if c.adapter else (), placements if c.adapter else ())
            canvases = out.canvases or canvases
            results[c.name] = np.asarray(out.image)
        if canvases is not None:
            pasted = combined_canvas(canvases, (spec.size, spec.size))
            mask = np.any([cv.mask for cv in canvases], axis=0)
            results["paste"] = np.where(mask[..., None], pasted, target.image)
        for name, image in results.items():
            t = score_image(image, target.landmarks, candidates, ref_embs, gt_embs, recognizer)
            tallies[(name, n)] = tallies.get((name, n), Tally()).add(t)
        if figure is not None and i < figure_cases:
            figure.append((results, [ident.primary.crop112 for ident in identities], target.boxes))
    rows = []
    for name in dict.fromkeys(k[0] for k in tallies):
        for n in counts:
            rows.append(tallies[(name, n)].row(name, n))
        if 2 in counts and 3 in counts:
            rows.append(tallies[(name, 2)].add(tallies[(name, 3)]).row(name, "2-3"))
    return [{**row, "id_guidance": guidance.get(row["config"], 1.0)} for row in rows]


def save_figure(cases: list, path: Path, zoom: int = 3) -> Path:
    """One row per case: the references, then ground truth, paste and every config's picture, boxes drawn."""
    from PIL import Image

    from anyphoto_core.app.previews import draw_numbered_boxes

    rows = []
    for results, refs, boxes in cases:
        size = next(iter(results.values())).shape[0]
        tiles = [np.asarray(Image.fromarray(r).resize((size, size))) for r in refs]
        tiles += [np.full((size, size, 3), 255, np.uint8)] * (4 - len(refs))
        tiles += [draw_numbered_boxes(img, boxes.tolist()) for img in results.values()]
        rows.append(np.concatenate(tiles, axis=1))
    grid = np.concatenate(rows, axis=0)
    image = Image.fromarray(grid).resize((grid.shape[1] * zoom, grid.shape[0] * zoom), Image.Resampling.NEAREST)
    image.save(path)
    print(f"columns: 4 reference slots | {' | '.join(cases[0][0])}")
    return Path(path)


def run_eval(
    out_json: Path,
    folder: Path | None = None,
    cases_per_count: int = 8,
    seed: int = 0,
    figure: Path | None = None,
    id_guidance: float = 1.0,
) -> list[dict]:
    start = time.perf_counter()
    cases: list | None = [] if figure is not None else None
    rows = evaluate(folder, cases_per_count, seed, figure=cases, id_guidance=id_guidance)
    if figure is not None:
        save_figure(cases, figure)
    seconds = time.perf_counter() - start
    Path(out_json).parent.mkdir(parents=True, exist_ok=True)
    Path(out_json).write_text(json.dumps(rows, indent=1))
    print(f"wrote {out_json} ({len(rows)} rows, {seconds:.0f} s)")
    return rows
