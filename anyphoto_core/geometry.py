"""Face geometry: the ArcFace 5-point template, similarity fits, boxes <-> landmarks.

Conventions used everywhere in AnyPhoto:

* Landmarks are ``(5, 2)`` float arrays of ``(x, y)`` pixel coordinates in the order of the
  ArcFace protocol: left eye, right eye, nose tip, left mouth corner, right mouth corner
  ("left" = image left).
* A *face box* ``(x1, y1, x2, y2)`` (pixels, ``x2 > x1``, ``y2 > y1``) is a face detector's box:
  forehead to chin, cheek to cheek. It is what the location editor draws, what MultiID-Bench
  stores, and what placement accuracy is scored against. A box is turned into landmarks by
  mapping :data:`TEMPLATE_FACE_BOX` (the nominal detector box of an ArcFace-aligned 112 crop)
  onto it with one uniform scale (faces keep their proportions; a non-square box is fitted by
  area).
"""

from __future__ import annotations

import numpy as np
from skimage.transform import SimilarityTransform

#: ArcFace 5-point template for a 112x112 aligned crop (insightface ``arcface_dst``), pixels.
ARCFACE_TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)

#: Nominal face-detector box ``(x1, y1, x2, y2)`` of an ArcFace-aligned 112x112 crop, pixels.
#: Width is about 2.2x the eye distance, the top sits one eye-to-mouth distance above the
#: eyes and the bottom half of it below the mouth, matching SCRFD/CenterFace boxes on aligned
#: crops to within a few pixels.
TEMPLATE_FACE_BOX = (17.0, 11.0, 95.0, 112.0)


def arcface_template(size: int) -> np.ndarray:
    """ArcFace template for a ``size x size`` crop, exactly as insightface's ``estimate_norm``.

    Sizes divisible by 112 scale the 112 template; sizes divisible by 128 scale the 128-based
    variant (template shifted right by 8 px at 128). Returns ``(5, 2)`` float64 pixels.
    """
    if size % 112 == 0:
        ratio, shift_x = size / 112.0, 0.0
    elif size % 128 == 0:
        ratio = size / 128.0
        shift_x = 8.0 * ratio
    else:
        raise ValueError(f"ArcFace crop size must be a multiple of 112 or 128, got {size}")
    dst = ARCFACE_TEMPLATE_112 * ratio
    dst[:, 0] += shift_x
    return dst


def as_landmarks(points, what: str = "landmarks") -> np.ndarray:
    """Validate and convert to a ``(5, 2)`` float64 array; raise ``ValueError`` naming ``what``."""
    arr = np.asarray(points, dtype=np.float64)
    if arr.shape != (5, 2):
        raise ValueError(f"{what} must be 5 (x, y) points, got an array of shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} contain NaN or infinite values: {arr.tolist()}")
    return arr


def estimate_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping ``src`` to ``dst``.

    Uses scikit-image's ``SimilarityTransform`` (Umeyama): ``from_estimate`` where it exists
    (scikit-image >= 0.26, which deprecates ``estimate``), else ``estimate`` (older releases that
    Python 3.10 and the oldest allowed pins get). Returns the 3x3 homogeneous matrix
    ``[[a, -b, tx], [b, a, ty], [0, 0, 1]]``.
    """
    src = as_landmarks(src, "source landmarks")
    dst = as_landmarks(dst, "target landmarks")
    if hasattr(SimilarityTransform, "from_estimate"):
        tform = SimilarityTransform.from_estimate(src, dst)
        fitted = bool(tform)
    else:
        tform = SimilarityTransform()
        fitted = bool(tform.estimate(src, dst))
    if not fitted or not np.all(np.isfinite(tform.params)):
        raise ValueError("landmarks are degenerate (all points coincide); cannot fit a similarity")
    return np.asarray(tform.params, dtype=np.float64)


def similarity_scale(matrix: np.ndarray) -> float:
    """Uniform scale ``s = sqrt(a^2 + b^2)`` of a similarity matrix (paper eq. 27)."""
    a, b = float(matrix[0, 0]), float(matrix[1, 0])
    return float(np.hypot(a, b))


def apply_matrix(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 3x3 (or 2x3) affine matrix to ``(N, 2)`` points."""
    pts = np.asarray(points, dtype=np.float64)
    return pts @ np.asarray(matrix, dtype=np.float64)[:2, :2].T + np.asarray(matrix)[:2, 2]


def validate_box(box, what: str = "box") -> tuple[float, float, float, float]:
    """Return ``box`` as 4 floats or raise ``ValueError`` saying what is wrong with it."""
    vals = np.asarray(box, dtype=np.float64).reshape(-1)
    if vals.shape != (4,):
        raise ValueError(f"{what} must be 4 numbers x1,y1,x2,y2, got {list(vals)}")
    if not np.all(np.isfinite(vals)):
        raise ValueError(f"{what} contains NaN or infinite values: {list(vals)}")
    x1, y1, x2, y2 = (float(v) for v in vals)
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"{what} {[x1, y1, x2, y2]} is empty: need x2 > x1 and y2 > y1")
    return x1, y1, x2, y2


def box_to_landmarks(box) -> np.ndarray:
    """Target landmarks for a face box: the template placed so its nominal box fills ``box``.

    One uniform scale ``sqrt(area(box) / area(TEMPLATE_FACE_BOX))``; the nominal box's centre is
    put on the box's centre. Returns ``(5, 2)`` float64 pixels.
    """
    x1, y1, x2, y2 = validate_box(box)
    tx1, ty1, tx2, ty2 = TEMPLATE_FACE_BOX
    scale = np.sqrt(((x2 - x1) * (y2 - y1)) / ((tx2 - tx1) * (ty2 - ty1)))
    t_center = np.array([(tx1 + tx2) / 2.0, (ty1 + ty2) / 2.0])
    b_center = np.array([(x1 + x2) / 2.0, (y1 + y2) / 2.0])
    return (ARCFACE_TEMPLATE_112 - t_center) * scale + b_center


def landmarks_to_box(landmarks) -> tuple[float, float, float, float]:
    """Inverse of :func:`box_to_landmarks` for any landmarks: the nominal box under their fit."""
    lmk = as_landmarks(landmarks)
    matrix = estimate_similarity(ARCFACE_TEMPLATE_112, lmk)
    scale = similarity_scale(matrix)
    tx1, ty1, tx2, ty2 = TEMPLATE_FACE_BOX
    center = apply_matrix(matrix, np.array([[(tx1 + tx2) / 2.0, (ty1 + ty2) / 2.0]]))[0]
    half_w, half_h = scale * (tx2 - tx1) / 2.0, scale * (ty2 - ty1) / 2.0
    return (center[0] - half_w, center[1] - half_h, center[0] + half_w, center[1] + half_h)
