"""Reading a MultiID-Bench-format case list and finding the generated image of each case.

Bench JSON: a list of cases (the index files ``p1.json``/``p2.json``/``p3.json`` that
WithAnyone's ``hf2bench.py`` writes, or our own), each an object with:

* ``prompt`` (or ``caption_en``): the text prompt;
* ``image_paths``: the reference images, one per identity, in identity order;
* ``ori_img_path``: the ground-truth (GT) image;
* ``bboxes`` (optional): one face box ``[x1, y1, x2, y2]`` per identity in GT pixels, box k
  belonging to reference k. When absent, ``bboxes`` is read from the JSON beside the GT image
  (``<GT path without extension>.json``), as hf2bench stores it;
* ``id`` (optional): the case name. Default: ``ori_img_path`` without extension with ``/``
  replaced by ``_`` (WithAnyone's ``infer_withanyone.py`` output folder name, e.g.
  ``num_3_0001``), else the 1-based case number as ``%04d``.

Relative paths are resolved against ``data_root`` (default: the bench JSON's folder).

Generated images are looked up in the generations folder as ``<id>.png``, ``<id>.jpg``,
``<id>.jpeg``, ``<id>.webp`` or ``<id>/out.jpg`` (WithAnyone's layout), first found wins.
An optional ``<id>.placements.json`` beside it (AnyPhoto placements JSON, see
:mod:`anyphoto_core.placements`) gives the target boxes actually used; otherwise the GT boxes
are scaled to the generated image's size (x by width ratio, y by height ratio).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..geometry import validate_box
from ..placements import parse_placements

GENERATED_CANDIDATES = ("{id}.png", "{id}.jpg", "{id}.jpeg", "{id}.webp", "{id}/out.jpg")


@dataclass(frozen=True)
class BenchCase:
    """One test case. ``boxes``: ``(K, 4)`` face boxes in GT pixels (K = number of references) or ``None``."""

    id: str
    prompt: str
    gt_path: Path | None
    ref_paths: tuple[Path, ...]
    boxes: np.ndarray | None


def _read_json(path: Path, what: str):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{what} {path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{what} {path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None


def _case_boxes(entry: dict, gt_path: Path | None, n_refs: int, who: str) -> np.ndarray | None:
    raw = entry.get("bboxes")
    if raw is None and gt_path is not None:
        sidecar = gt_path.with_suffix(".json")
        if sidecar.is_file():
            raw = _read_json(sidecar, f"{who}: box file").get("bboxes")
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = json.loads(raw)
    boxes = np.array([validate_box(b, f"{who} box {i + 1}") for i, b in enumerate(raw)], dtype=np.float64)
    if len(boxes) != n_refs:
        raise ValueError(f"{who} has {len(boxes)} boxes but {n_refs} reference images; need one box per reference")
    return boxes.reshape(-1, 4)


def load_bench(path, data_root=None) -> list[BenchCase]:
    """Read a bench JSON (see module docstring). Raises ``ValueError`` naming the bad case and field."""
    path = Path(path)
    root = Path(data_root) if data_root is not None else path.parent
    entries = _read_json(path, "bench file")
    if not isinstance(entries, list):
        raise ValueError(f"bench file {path} must hold a JSON list of cases, got {type(entries).__name__}")
    cases, seen = [], set()
    for i, entry in enumerate(entries):
        who = f"case {i + 1} of {path.name}"
        if not isinstance(entry, dict):
            raise ValueError(f"{who} must be an object with prompt/image_paths/ori_img_path")
        refs = entry.get("image_paths")
        if not isinstance(refs, list) or not refs:
            raise ValueError(f"{who} needs 'image_paths': a non-empty list of reference image paths")
        gt_rel = entry.get("ori_img_path")
        gt_path = root / gt_rel if gt_rel else None
        if "id" in entry:
            case_id = str(entry["id"])
        elif gt_rel:
            case_id = str(Path(gt_rel).with_suffix("")).replace("\\", "/").replace("/", "_")
        else:
            case_id = f"{i + 1:04d}"
        if case_id in seen:
            raise ValueError(f"{who}: id {case_id!r} is used twice; give each case a unique 'id'")
        seen.add(case_id)
        prompt = entry.get("prompt", entry.get("caption_en", ""))
        cases.append(
            BenchCase(
                case_id,
                str(prompt),
                gt_path,
                tuple(root / r for r in refs),
                _case_boxes(entry, gt_path, len(refs), who),
            )
        )
    return cases


def find_generated(folder, case_id: str) -> Path | None:
    """The generated image of ``case_id`` in ``folder`` (see module docstring), or ``None``."""
    folder = Path(folder)
    for pattern in GENERATED_CANDIDATES:
        candidate = folder / pattern.format(id=case_id)
        if candidate.is_file():
            return candidate
    return None


def target_boxes(
    case: BenchCase, generated_path: Path, gen_size: tuple[int, int], gt_size: tuple[int, int] | None
) -> np.ndarray | None:
    """``(K, 4)`` target boxes in generated-image pixels, or ``None`` when the case has none.

    ``gen_size``/``gt_size`` are ``(width, height)``. A ``<id>.placements.json`` sidecar next to
    the generated image wins (its placements' nominal boxes); else the GT boxes are scaled.
    """
    sidecar = generated_path.parent / f"{case.id}.placements.json"
    if sidecar.is_file():
        placements = parse_placements(sidecar.read_text(encoding="utf-8"), *gen_size)
        if len(placements) != len(case.ref_paths):
            raise ValueError(
                f"{sidecar} has {len(placements)} placements but case {case.id} has {len(case.ref_paths)} references"
            )
        return np.array([p.box for p in placements], dtype=np.float64)
    if case.boxes is None or gt_size is None:
        return None
    sx, sy = gen_size[0] / gt_size[0], gen_size[1] / gt_size[1]
    return case.boxes * np.array([sx, sy, sx, sy])
