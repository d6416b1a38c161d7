"""Evaluating one bench case: detect and embed faces, then the MultiID-Bench metrics and placement.

Face handling follows MultiID-Bench (``eval.py`` / ``arcface_metric.py``):

* generated and GT images: every detected face is embedded, no padding;
* each reference image is first padded to a black square of side ``int(1.5 * max(w, h))``
  (image centred) and only its highest-scoring face is used; if any reference has no face the
  case gets no Sim(Ref)/CP and is dropped from the bench aggregates, as the bench does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from . import metrics
from .analyzer import BenchFaceAnalyzer
from .dataset import BenchCase, find_generated, target_boxes

#: MultiID-Bench's reference padding ratio (``pad_image(img, ratio=1.5)``).
REF_PAD_RATIO = 1.5


@dataclass(frozen=True)
class FaceRecord:
    """A detected face: ``box`` (4,) pixels of its (unpadded) image, ``score``, ``embedding`` (D,)."""

    box: np.ndarray
    score: float
    embedding: np.ndarray


@dataclass
class CaseResult:
    """Everything measured on one case. Metric fields are ``None`` where the bench has no value."""

    case: BenchCase
    generated_path: Path | None = None
    gen_size: tuple[int, int] | None = None
    gt_size: tuple[int, int] | None = None
    targets: np.ndarray | None = None
    ref_faces: list[FaceRecord | None] = field(default_factory=list)
    gen_faces: list[FaceRecord] = field(default_factory=list)
    gt_faces: list[FaceRecord] = field(default_factory=list)
    sim_gt: float | None = None
    sim_ref: float | None = None
    copy_paste: float | None = None
    non_matched_gt: float | None = None
    non_matched_ref: float | None = None
    placement: metrics.PlacementResult | None = None
    clip_i: float | None = None
    clip_t: float | None = None
    aesthetic: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def bench_valid(self) -> bool:
        """The bench keeps a sample only when Sim(Ref) could be computed (else ``bad_count``)."""
        return self.sim_ref is not None


def load_rgb(path: Path, what: str) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB of an image file; ``ValueError`` naming the file when unreadable."""
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except FileNotFoundError:
        raise ValueError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise ValueError(f"{what} {path} cannot be read as an image ({exc})") from None


def pad_reference(image: np.ndarray, ratio: float = REF_PAD_RATIO) -> tuple[np.ndarray, tuple[int, int]]:
    """Black square of side ``int(ratio * max(h, w))`` with ``image`` centred; returns it and the ``(x, y)`` offset."""
    h, w = image.shape[:2]
    side = int(max(h, w) * ratio)
    ox, oy = (side - w) // 2, (side - h) // 2
    out = np.zeros((side, side, 3), dtype=np.uint8)
    out[oy : oy + h, ox : ox + w] = image
    return out, (ox, oy)


def analyze_faces(analyzer: BenchFaceAnalyzer, image: np.ndarray) -> list[FaceRecord]:
    """Detect every face of ``image`` and embed each at its landmarks."""
    faces = []
    for det in analyzer.detect(image):
        emb = np.asarray(analyzer.embed(image, np.asarray(det.landmarks, dtype=np.float64)), dtype=np.float64)
        faces.append(FaceRecord(np.asarray(det.box, dtype=np.float64).reshape(4), float(det.score), emb.reshape(-1)))
    return faces


def reference_face(analyzer: BenchFaceAnalyzer, image: np.ndarray) -> FaceRecord | None:
    """Highest-scoring face of the padded reference, box mapped back to ``image`` pixels; ``None`` if none."""
    padded, (ox, oy) = pad_reference(image)
    faces = analyze_faces(analyzer, padded)
    if not faces:
        return None
    best = max(faces, key=lambda f: f.score)
    return FaceRecord(best.box - np.array([ox, oy, ox, oy], dtype=np.float64), best.score, best.embedding)


def _embeddings(faces: list[FaceRecord]) -> np.ndarray:
    return np.array([f.embedding for f in faces], dtype=np.float64)


def evaluate_case(
    case: BenchCase,
    generations_dir,
    analyzer: BenchFaceAnalyzer,
    quality=None,
    match_threshold: float = 0.2,
    iou_threshold: float = 0.3,
) -> CaseResult:
    """Measure one case. ``quality``: optional :class:`~.quality.QualityScorers` for CLIP/aesthetic.

    A missing generated image is not an error: the result has every identity missing and a note.
    """
    result = CaseResult(case)
    refs = [load_rgb(p, f"case {case.id}: reference image") for p in case.ref_paths]
    result.ref_faces = [reference_face(analyzer, r) for r in refs]
    for k, face in enumerate(result.ref_faces):
        if face is None:
            result.notes.append(f"no face found in reference {k + 1} ({case.ref_paths[k].name})")
    refs_ok = all(f is not None for f in result.ref_faces)
    ref_embs = _embeddings(result.ref_faces) if refs_ok else None

    gt = None
    if case.gt_path is not None:
        gt = load_rgb(case.gt_path, f"case {case.id}: GT image")
        result.gt_size = (gt.shape[1], gt.shape[0])
        result.gt_faces = analyze_faces(analyzer, gt)

    gen_path = find_generated(generations_dir, case.id)
    if gen_path is None:
        result.notes.append(f"generated image not found (looked for {case.id}.png/.jpg/.jpeg/.webp, {case.id}/out.jpg)")
        if refs_ok and case.boxes is not None:  # strict placement: every identity is missing
            result.placement = metrics.placement_accuracy(
                case.boxes, ref_embs, np.zeros((0, 4)), np.zeros((0, ref_embs.shape[1])), match_threshold, iou_threshold
            )
        return result
    result.generated_path = gen_path
    gen = load_rgb(gen_path, f"case {case.id}: generated image")
    result.gen_size = (gen.shape[1], gen.shape[0])
    result.gen_faces = analyze_faces(analyzer, gen)
    gen_embs = _embeddings(result.gen_faces)
    if not result.gen_faces:
        result.notes.append("no face found in the generated image")

    if gt is not None:
        if not result.gt_faces:
            result.notes.append("no face found in the GT image")
        gt_embs = _embeddings(result.gt_faces)
        result.sim_gt = metrics.sim_gt(gen_embs, gt_embs)
        result.non_matched_gt = metrics.non_matched(gen_embs, gt_embs)
        if refs_ok:
            scores = metrics.copy_paste_scores(gen_embs, gt_embs, ref_embs)
            result.copy_paste = None if scores is None else float(np.mean(scores))
            if scores is None and result.gen_faces and result.gt_faces:
                result.notes.append(
                    f"CP skipped: face counts differ (generated {len(result.gen_faces)}, "
                    f"GT {len(result.gt_faces)}, references {len(refs)})"
                )
    if refs_ok:
        result.sim_ref = metrics.sim_ref(gen_embs, ref_embs)
        result.non_matched_ref = metrics.non_matched(gen_embs, ref_embs)

    result.targets = target_boxes(case, gen_path, result.gen_size, result.gt_size)
    if result.targets is None:
        result.notes.append(
            "no target boxes (no 'bboxes', no GT box file, no placements sidecar): placement not scored"
        )
    elif refs_ok:
        boxes = np.array([f.box for f in result.gen_faces]).reshape(-1, 4)
        result.placement = metrics.placement_accuracy(
            result.targets, ref_embs, boxes, gen_embs, match_threshold, iou_threshold
        )

    if quality is not None:
        gen_img = Image.fromarray(gen)
        result.clip_t = quality.clip_t(gen_img, case.prompt)
        result.clip_i = quality.clip_i(Image.fromarray(gt), gen_img) if gt is not None else None
        result.aesthetic = quality.aesthetic(gen_img)
    return result
