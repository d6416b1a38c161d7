"""Placement accuracy of one generated image, for hosts (the ComfyUI ``AnyPhotoEvaluate`` node).

Detect and embed every face of the image, credit faces to identities with
:func:`anyphoto_core.evaluation.metrics.placement_accuracy`, and report / draw the result. Identity k (0-based in
code) is numbered ``k + 1`` and drawn in :func:`~.figures.identity_color` ``(k)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from .analyzer import BenchFaceAnalyzer
from .case_metrics import FaceRecord, analyze_faces
from .figures import annotate_generation
from .metrics import PlacementResult, placement_accuracy


@dataclass(frozen=True)
class ImageEvaluation:
    """``targets`` ``(K, 4)`` and ``faces[j].box`` in the image's pixels; ``placement`` credits faces to identities."""

    targets: np.ndarray
    faces: tuple[FaceRecord, ...]
    placement: PlacementResult


def scale_boxes(boxes, from_size: tuple[int, int], to_size: tuple[int, int]) -> np.ndarray:
    """``(K, 4)`` pixel boxes of a ``from_size = (w, h)`` image mapped onto a ``to_size`` image."""
    (fw, fh), (tw, th) = from_size, to_size
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4) * np.array([tw / fw, th / fh, tw / fw, th / fh])


def evaluate_image(
    analyzer: BenchFaceAnalyzer,
    image: np.ndarray,
    target_boxes,
    ref_embeddings,
    match_threshold: float = 0.2,
    iou_threshold: float = 0.3,
) -> ImageEvaluation:
    """Faces of ``image`` ``(H, W, 3)`` uint8 against identity k's ``target_boxes[k]`` (pixels) and
    ``ref_embeddings[k]`` ``(D,)``. Raises ``ValueError`` when the counts differ."""
    faces = tuple(analyze_faces(analyzer, image))
    targets = np.asarray(target_boxes, dtype=np.float64).reshape(-1, 4)
    result = placement_accuracy(
        targets,
        ref_embeddings,
        [f.box for f in faces],
        [f.embedding for f in faces],
        match_threshold=match_threshold,
        iou_threshold=iou_threshold,
    )
    return ImageEvaluation(targets, faces, result)


def placement_json(p: PlacementResult) -> dict:
    """Per identity (1-based) similarity, IoU, centre distance, in_box, missing; duplicates and strangers."""
    return {
        "identities": [
            {
                "identity": q.identity + 1,
                "face": q.face,
                "similarity": q.similarity,
                "iou": q.iou,
                "center_distance": q.center_distance,
                "in_box": q.in_box,
                "missing": q.missing,
                "in_box_of": None if q.in_box_of is None else q.in_box_of + 1,
            }
            for q in p.identities
        ],
        "duplicates": [{"face": j, "identity": k + 1} for j, k in p.duplicates],
        "strangers": list(p.strangers),
    }


def evaluation_json(e: ImageEvaluation) -> dict:
    """:func:`placement_json` plus the detected faces and the counts (missing, duplicates, strangers, in box)."""
    p = e.placement
    return {
        **placement_json(p),
        "faces": [
            {"face": j, "box": [round(float(v), 2) for v in f.box], "score": round(f.score, 4)}
            for j, f in enumerate(e.faces)
        ],
        "target_boxes": [[round(float(v), 2) for v in b] for b in e.targets],
        "n_identities": len(p.identities),
        "n_faces": len(e.faces),
        "n_missing": p.n_missing,
        "n_duplicates": len(p.duplicates),
        "n_strangers": len(p.strangers),
        "n_in_box": p.n_in_box,
        "mean_iou": p.mean_iou,
        "in_box_rate": p.in_box_rate,
    }


def annotate_evaluation(image: np.ndarray, e: ImageEvaluation) -> np.ndarray:
    """``image`` ``(H, W, 3)`` uint8 at its own size with target boxes (dashed, ``T k``) and detected faces
    (solid, ``k cos`` in identity k's colour; ``dup k``; grey ``?`` for strangers)."""
    pil = Image.fromarray(np.asarray(image, dtype=np.uint8))
    boxes = np.array([f.box for f in e.faces], dtype=np.float64).reshape(-1, 4)
    return np.asarray(annotate_generation(pil, e.targets, boxes, e.placement, max_side=max(pil.size)))
