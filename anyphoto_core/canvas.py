"""Location canvas construction, exactly as the AnyPhoto paper's appendix 0.A.3.

For one identity: estimate a similarity between the target landmarks (output image) and the
patch landmarks (aligned crop) with scikit-image, take the reciprocal of its scale as the
patch-to-image scale, clamp it, resize the patch (bicubic) and its alpha (nearest), translate by
the mean landmark residual rounded to integer pixels, and alpha-composite onto a white canvas of
the output size (PIL clips pastes that cross the border). The binary mask is the pasted alpha
thresholded. The paste does not rotate the patch: that is the paper's procedure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from .geometry import as_landmarks, estimate_similarity, similarity_scale

#: Default clamp range of the patch-to-image scale (the paper's numbers were lost; a 512 px
#: crop then spans 32 px to 2048 px on the canvas).
DEFAULT_SCALE_RANGE = (1.0 / 16.0, 4.0)
#: Pasted alpha at or above this value (0..255) counts as face in the binary mask.
DEFAULT_MASK_THRESHOLD = 128


@dataclass(frozen=True)
class FacePatch:
    """A norm-cropped face: ``image`` (S, S, 3) uint8 RGB, ``alpha`` (S, S) uint8,
    ``landmarks`` (5, 2) float pixels in patch coordinates."""

    image: np.ndarray
    alpha: np.ndarray
    landmarks: np.ndarray

    def __post_init__(self):
        if self.image.ndim != 3 or self.image.shape[2] != 3 or self.image.dtype != np.uint8:
            raise ValueError(
                f"face patch must be an (H, W, 3) uint8 RGB array, got {self.image.shape} {self.image.dtype}"
            )
        if self.alpha.shape != self.image.shape[:2]:
            raise ValueError(f"face patch alpha {self.alpha.shape} does not match image {self.image.shape[:2]}")
        as_landmarks(self.landmarks, "face patch landmarks")

    @classmethod
    def opaque(cls, image: np.ndarray, landmarks) -> FacePatch:
        """A patch with a fully opaque alpha (the paper's default when none is given)."""
        return cls(image, np.full(image.shape[:2], 255, np.uint8), np.asarray(landmarks, np.float64))


@dataclass(frozen=True)
class LocationCanvas:
    """One identity's canvas: ``image`` (H, W, 3) uint8 RGB on white, ``mask`` (H, W) bool,
    ``scale`` (the clamped patch-to-image scale used), ``offset`` (x, y) integer paste position,
    ``patch_size`` (w, h) of the resized patch."""

    image: np.ndarray
    mask: np.ndarray
    scale: float
    offset: tuple[int, int]
    patch_size: tuple[int, int]


def paste_scale(patch_landmarks, target_landmarks, scale_range=DEFAULT_SCALE_RANGE) -> tuple[float, float]:
    """Paper eqs. 26-28: returns ``(raw, clamped)`` patch-to-image scale.

    The similarity is estimated from the target (image) landmarks to the patch landmarks, so its
    scale is image-to-patch; the reciprocal is the patch-to-image scale.
    """
    matrix = estimate_similarity(target_landmarks, patch_landmarks)
    raw = 1.0 / similarity_scale(matrix)
    lo, hi = scale_range
    return raw, float(min(max(raw, lo), hi))


def paste_offset(patch_landmarks, target_landmarks, scale: float) -> tuple[int, int]:
    """Paper eq. 29: mean residual of target minus scaled patch landmarks, rounded to ints."""
    residual = as_landmarks(target_landmarks) - scale * as_landmarks(patch_landmarks)
    tx, ty = residual.mean(axis=0)
    return int(round(tx)), int(round(ty))


def build_location_canvas(
    patch: FacePatch,
    target_landmarks,
    size: tuple[int, int],
    scale_range=DEFAULT_SCALE_RANGE,
    mask_threshold: int = DEFAULT_MASK_THRESHOLD,
) -> LocationCanvas:
    """Paste ``patch`` on a white canvas of ``size = (width, height)`` at ``target_landmarks``.

    Returns the canvas image and its binary mask. Pastes crossing the border are clipped.
    """
    width, height = int(size[0]), int(size[1])
    if width <= 0 or height <= 0:
        raise ValueError(f"canvas size must be positive, got {width}x{height}")
    _, scale = paste_scale(patch.landmarks, target_landmarks, scale_range)
    src_h, src_w = patch.image.shape[:2]
    new_w, new_h = max(1, int(round(src_w * scale))), max(1, int(round(src_h * scale)))
    face = Image.fromarray(patch.image).resize((new_w, new_h), Image.Resampling.BICUBIC)
    alpha = Image.fromarray(patch.alpha).resize((new_w, new_h), Image.Resampling.NEAREST)
    offset = paste_offset(patch.landmarks, target_landmarks, scale)

    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    canvas.paste(face, offset, alpha)
    pasted_alpha = Image.new("L", (width, height), 0)
    pasted_alpha.paste(alpha, offset)
    mask = np.asarray(pasted_alpha) >= mask_threshold
    return LocationCanvas(np.asarray(canvas), mask, scale, offset, (new_w, new_h))
