"""Placements from a layout photo: where the faces of a pose photo are, mapped onto the output.

Mapping rule ("cover"): the layout photo is scaled uniformly so it covers the whole output
(scale = max(W / w, H / h)) and centred; what overflows is cropped. Faces keep their proportions.
Order: left to right by the face box centre x in output pixels. Faces whose box centre falls
outside the output after the crop are dropped with a warning.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..placements import Placement
from .backends import Detector
from .errors import NoFaceError
from .photos import load_photo, photo_name


def cover_transform(src_w: int, src_h: int, dst_w: int, dst_h: int) -> tuple[float, np.ndarray]:
    """Scale and offset ``(2,)`` of the "cover" mapping: ``out = scale * photo_xy + offset``."""
    scale = max(dst_w / src_w, dst_h / src_h)
    offset = np.array([(dst_w - scale * src_w) / 2.0, (dst_h - scale * src_h) / 2.0])
    return scale, offset


def placements_from_layout_photo(
    photo, detector: Detector, width: int, height: int, name: str | None = None
) -> list[Placement]:
    """Detect the faces of ``photo`` and return their :class:`Placement` s for a ``width x height`` output."""
    label = name or photo_name(photo, "layout photo")
    image = load_photo(photo, label)
    if width < 1 or height < 1:
        raise ValueError(f"output size must be positive, got {width}x{height}")
    detections = detector.detect(image)
    if not detections:
        raise NoFaceError(f"no face found in the layout photo {label}; use a photo where every face is visible")
    scale, offset = cover_transform(image.shape[1], image.shape[0], width, height)
    kept = []
    for det in detections:
        cx, cy = scale * (det.box[:2] + det.box[2:]) / 2.0 + offset
        if 0 <= cx < width and 0 <= cy < height:
            kept.append((cx, Placement.from_landmarks(scale * det.landmarks + offset)))
    if len(kept) < len(detections):
        warnings.warn(
            f"{len(detections) - len(kept)} face(s) of {label} fall outside the {width}x{height} output "
            "after centre-cropping and were dropped",
            UserWarning,
            stacklevel=2,
        )
    if not kept:
        raise NoFaceError(f"all faces of the layout photo {label} fall outside the {width}x{height} output")
    return [p for _, p in sorted(kept, key=lambda t: t[0])]
