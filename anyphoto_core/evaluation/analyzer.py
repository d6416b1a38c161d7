"""The face analysis the evaluation needs, as a small protocol, and the real one behind it.

Evaluation code only calls :class:`BenchFaceAnalyzer`: ``detect`` then ``embed`` per face. Tests
pass a fake; the CLI loads :func:`load_bench_analyzer` (insightface ``buffalo_l`` through
:mod:`anyphoto_core.faces`, as MultiID-Bench does).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

#: MultiID-Bench's metric face models: insightface buffalo_l (SCRFD det_10g + w600k_r50), det_thresh 0.45.
BENCH_FACE_PACK = "buffalo_l"
BENCH_DET_THRESH = 0.45


class DetectedFace(Protocol):
    """One detection: ``box`` (4,) x1,y1,x2,y2 pixels, ``score`` in [0, 1], ``landmarks`` (5, 2) pixels."""

    box: np.ndarray
    score: float
    landmarks: np.ndarray


class BenchFaceAnalyzer(Protocol):
    """What the evaluation needs from face analysis.

    ``detect(image)``: all faces of an ``(H, W, 3)`` uint8 RGB image (any order).
    ``embed(image, landmarks)``: the ``(512,)`` float32 recognition embedding (raw or normalised;
    metrics normalise) of the face at ``landmarks`` ``(5, 2)`` in ``image``.
    """

    def detect(self, image: np.ndarray) -> Sequence[DetectedFace]: ...

    def embed(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray: ...


class AlignedFaceAnalyzer:
    """Adapts :class:`anyphoto_core.faces.analyzer.FaceAnalyzer` (detector + crop recognizer) to the protocol."""

    def __init__(self, face_analyzer, align):
        self.detector = face_analyzer.detector
        self.recognizer = face_analyzer.recognizer
        self.align = align

    def detect(self, image: np.ndarray):
        return self.detector.detect(image)

    def embed(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        return self.recognizer.embed(self.align(image, landmarks))


def load_bench_analyzer(models_root, pack: str = BENCH_FACE_PACK, det_thresh: float = BENCH_DET_THRESH):
    """The real analyzer: ``<models_root>/insightface/models/<pack>/*.onnx`` via :mod:`anyphoto_core.faces`.

    Raises ``RuntimeError`` naming what to install when the face pipeline cannot be imported, and
    the face package's own ``FaceModelError`` (a ``ValueError``) when the model files are missing.
    """
    try:
        from ..faces.alignment import arcface_crop
        from ..faces.analyzer import load_face_analyzer
    except ImportError as exc:
        raise RuntimeError(
            f"face analysis is unavailable ({exc}); the evaluation needs anyphoto_core.faces with insightface and "
            "onnxruntime installed (pip install --no-deps insightface onnxruntime)"
        ) from exc
    analyzer = load_face_analyzer(Path(models_root) / "insightface", name=pack, det_thresh=det_thresh)
    return AlignedFaceAnalyzer(analyzer, arcface_crop)
