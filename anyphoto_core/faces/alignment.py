"""ArcFace alignment of a photo at 5 landmarks (insightface ``face_align``), with an alpha mask."""

from __future__ import annotations

import warnings

import numpy as np

from ..geometry import as_landmarks
from .runtime import import_face_package


def _quiet(name: str, *args, **kwargs):
    """insightface ``face_align.<name>(*args, **kwargs)``; its estimate_norm calls scikit-image's
    deprecated ``SimilarityTransform.estimate`` (FutureWarning), kept off the console."""
    fn = getattr(import_face_package("insightface.utils.face_align"), name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return fn(*args, **kwargs)


def arcface_crop(image: np.ndarray, landmarks) -> np.ndarray:
    """The recognizer's input: ``face_align.norm_crop`` at 112, ``(112, 112, 3)`` uint8 (same channels as ``image``)."""
    return _quiet("norm_crop", image, as_landmarks(landmarks), image_size=112)


def aligned_crop_with_alpha(image: np.ndarray, landmarks, size: int = 512) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ArcFace-aligned ``size x size`` crop of ``image`` (``size`` a multiple of 112 or 128).

    Returns ``(crop (size, size, 3) uint8, alpha (size, size) uint8, matrix (2, 3))``: ``alpha`` is
    255 where the warp sampled inside the photo and 0 outside it; ``matrix`` maps photo pixels to
    crop pixels, so the landmarks land on ``anyphoto_core.geometry.arcface_template(size)``.
    """
    crop, matrix = _quiet("norm_crop2", image, as_landmarks(landmarks), image_size=size)
    inside = np.full(image.shape[:2], 255, dtype=np.uint8)
    cv2 = import_face_package("cv2")
    alpha = cv2.warpAffine(inside, matrix, (size, size), flags=cv2.INTER_NEAREST, borderValue=0)
    return crop, alpha, matrix
