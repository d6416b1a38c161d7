"""Finding small faces in large photos.

Detectors look at a photo shrunk to their input size (CenterFace: 1024 px on the long side,
SCRFD: 640), so in a 6000x4000 photo a face with 24 px between the eyes shrinks to 4 px and is
missed. The search therefore runs in two passes:

1. the whole photo at the detector's size (fast; finds every face that is large in the frame);
2. only when pass 1 finds nothing and the photo is larger than that: the photo at scale
   :func:`second_pass_scale` (so a face with :data:`SEARCH_MIN_EYE_DISTANCE` px between the eyes
   appears with at least :data:`DETECTOR_MIN_EYE_DISTANCE` px, which the detectors find), cut into
   overlapping tiles of the detector's size; detections are mapped back and merged by NMS.

Documented minimum (``docs/faces.md``): faces with at least 16 px between the eyes are searched
for in photos of any size; that is also the smallest face AnyPhoto uses
(:data:`~anyphoto_core.faces.references.MIN_EYE_DISTANCE`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # backends imports this module
    from .backends import Detection

#: Smallest eye distance (pixels of the detector's input) that CenterFace and SCRFD find reliably.
DETECTOR_MIN_EYE_DISTANCE = 10.0
#: Faces with at least this many pixels between the eyes (in the photo) are searched for at any photo size.
SEARCH_MIN_EYE_DISTANCE = 16.0
#: Tiles overlap by this many pixels (of the resized photo), more than the box of any face pass 1
#: can miss, so a face cut by one tile is whole in the next.
TILE_OVERLAP = 128
#: Boxes overlapping more than this IoU across tiles are one face.
MERGE_IOU = 0.4

WindowFn = Callable[[np.ndarray], "list[Detection]"]


def first_pass_scale(shape, first_side: int) -> float:
    """Scale of pass 1: the photo's long side shrunk to ``first_side`` (never enlarged)."""
    return min(1.0, first_side / max(shape[:2]))


def second_pass_scale(shape, first_side: int) -> float | None:
    """Scale of pass 2, or None when pass 1 already saw the photo at that detail."""
    scale = min(1.0, DETECTOR_MIN_EYE_DISTANCE / SEARCH_MIN_EYE_DISTANCE)
    return scale if scale > first_pass_scale(shape, first_side) * 1.01 else None


def tile_origins(length: int, tile: int) -> list[int]:
    """Start offsets of overlapping tiles of ``tile`` px covering ``0..length``."""
    if length <= tile:
        return [0]
    step = max(1, tile - TILE_OVERLAP)
    starts = list(range(0, length - tile + 1, step))
    if starts[-1] + tile < length:
        starts.append(length - tile)
    return starts


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - iw * ih
    return float(iw * ih / union) if union > 0 else 0.0


def merge_detections(detections: list[Detection]) -> list[Detection]:
    """Greedy NMS: highest score first, dropping boxes with IoU above :data:`MERGE_IOU` to a kept one."""
    kept: list[Detection] = []
    for det in sorted(detections, key=lambda d: -d.score):
        if all(_iou(det.box, k.box) <= MERGE_IOU for k in kept):
            kept.append(det)
    return kept


def detect_in_tiles(detect_window: WindowFn, image: np.ndarray, scale: float, tile: int) -> list[Detection]:
    """Run ``detect_window`` on overlapping ``tile`` px tiles of ``image`` resized by ``scale``;
    detections in ``image`` pixels, merged across tiles."""
    import cv2

    from .backends import Detection

    h, w = image.shape[:2]
    work = image
    if scale < 1.0:
        work = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    sx, sy = w / work.shape[1], h / work.shape[0]
    found = []
    for y0 in tile_origins(work.shape[0], tile):
        for x0 in tile_origins(work.shape[1], tile):
            window = np.ascontiguousarray(work[y0 : y0 + tile, x0 : x0 + tile])
            for det in detect_window(window):
                shift = np.array([x0, y0], np.float64)
                box = (det.box.reshape(2, 2) + shift) * [sx, sy]
                found.append(Detection(box.reshape(4), det.score, (det.landmarks + shift) * [sx, sy]))
    return merge_detections(found)


def search_faces(
    detect_whole: WindowFn, detect_window: WindowFn, image: np.ndarray, first_side: int, tile: int
) -> list[Detection]:
    """Pass 1 (``detect_whole`` on the photo) and, when it finds nothing, pass 2 (tiles, see module doc)."""
    found = detect_whole(image)
    if found:
        return found
    scale = second_pass_scale(image.shape, first_side)
    return detect_in_tiles(detect_window, image, scale, tile) if scale is not None else []


def search_summary(shape, first_side: int) -> str:
    """What the search covered, for a "no face found" message."""
    h, w = shape[:2]
    scale = second_pass_scale(shape, first_side)
    if scale is None:
        return f"the whole {w}x{h} px photo was searched at full detail"
    return (
        f"the {w}x{h} px photo was searched shrunk to {first_pass_scale(shape, first_side) * max(w, h):.0f} px and "
        f"again in tiles at {scale * max(w, h):.0f} px, which finds faces with at least "
        f"{SEARCH_MIN_EYE_DISTANCE:g} px between the eyes"
    )
