"""Placements from a layout photo: where the faces of a pose photo are, mapped onto the output.

Mapping rule ("cover"): the layout photo is scaled uniformly so it covers the whole output
(scale = max(W / w, H / h)) and centred; what overflows is cropped. Faces keep their proportions.
Order: left to right by the face box centre x in output pixels. Faces whose box centre falls
outside the output after the crop are dropped, and the returned notice names each of them (its
number counted from the left of the photo and its box in photo pixels).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..notices import LAYOUT_FACES_DROPPED, Notice
from ..placements import Placement
from .backends import Detector
from .errors import NoFaceError
from .photos import load_photo, photo_name


def cover_transform(src_w: int, src_h: int, dst_w: int, dst_h: int) -> tuple[float, np.ndarray]:
    """Scale and offset ``(2,)`` of the "cover" mapping: ``out = scale * photo_xy + offset``."""
    scale = max(dst_w / src_w, dst_h / src_h)
    offset = np.array([(dst_w - scale * src_w) / 2.0, (dst_h - scale * src_h) / 2.0])
    return scale, offset


@dataclass(frozen=True)
class LayoutPlacements:
    """Result of :func:`placements_from_layout_photo`: ``placements`` left to right, ``notices`` for
    the user (faces dropped by the centre crop)."""

    placements: list[Placement]
    notices: tuple[Notice, ...] = ()


def placements_from_layout_photo(
    photo, detector: Detector, width: int, height: int, name: str | None = None
) -> LayoutPlacements:
    """Detect the faces of ``photo`` and return their :class:`Placement` s for a ``width x height`` output."""
    label = name or photo_name(photo, "layout photo")
    image = load_photo(photo, label)
    if width < 1 or height < 1:
        raise ValueError(f"output size must be positive, got {width}x{height}")
    detections = sorted(detector.detect(image), key=lambda d: d.center_x)
    if not detections:
        raise NoFaceError(f"no face found in the layout photo {label}; use a photo where every face is visible")
    scale, offset = cover_transform(image.shape[1], image.shape[0], width, height)
    kept, dropped = [], []
    for number, det in enumerate(detections, start=1):
        cx, cy = scale * (det.box[:2] + det.box[2:]) / 2.0 + offset
        if 0 <= cx < width and 0 <= cy < height:
            kept.append(Placement.from_landmarks(scale * det.landmarks + offset))
        else:
            x1, y1, x2, y2 = det.box
            dropped.append(f"face {number} at x={x1:.0f}..{x2:.0f}, y={y1:.0f}..{y2:.0f}")
    if not kept:
        raise NoFaceError(
            f"all faces of the layout photo {label} fall outside the {width}x{height} output after centre-cropping "
            "it; use a layout photo with the output's aspect ratio"
        )
    notices = ()
    if dropped:
        notices = (
            Notice(
                LAYOUT_FACES_DROPPED,
                f"{len(dropped)} of {len(detections)} face(s) of the layout photo {label} "
                f"({image.shape[1]}x{image.shape[0]} px; faces counted from the left, boxes in photo pixels) fall "
                f"outside the {width}x{height} output after centre-cropping and were dropped: {'; '.join(dropped)}. "
                "Use a layout photo with the output's aspect ratio, or give those people boxes",
            ),
        )
    return LayoutPlacements(kept, notices)
