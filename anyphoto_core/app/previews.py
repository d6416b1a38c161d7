"""Preview images for hosts: aligned faces with landmarks, canvases, face thumbnails, side-by-side sheets.

All functions take and return uint8 RGB arrays ``(H, W, 3)`` (numpy) so any host can show them;
ComfyUI nodes convert to IMAGE tensors ``(B, H, W, 3)`` float in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from ..canvas import LocationCanvas

#: One colour per person, the location editor's palette (docs/location_editor.md): 1 red, 2 green...
PERSON_COLORS = (
    (230, 60, 60),
    (60, 180, 75),
    (60, 110, 230),
    (245, 130, 48),
    (145, 30, 180),
    (70, 200, 220),
    (220, 50, 200),
    (150, 220, 60),
    (250, 160, 190),
    (230, 210, 40),
)


def person_color(index: int) -> tuple[int, int, int]:
    """Colour of person ``index`` (0-based), repeating after 10."""
    return PERSON_COLORS[index % len(PERSON_COLORS)]


def draw_landmarks(image: np.ndarray, landmarks: np.ndarray, color=(255, 0, 0), radius: int = 3) -> np.ndarray:
    """A copy of ``image`` with the 5 ``landmarks`` ``(5, 2)`` (pixels) drawn as dots."""
    pil = Image.fromarray(np.asarray(image, dtype=np.uint8))
    draw = ImageDraw.Draw(pil)
    for x, y in np.asarray(landmarks, dtype=np.float64):
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=tuple(color))
    return np.asarray(pil)


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """``image`` resized to ``size x size`` (bicubic)."""
    return np.asarray(Image.fromarray(np.asarray(image, dtype=np.uint8)).resize((size, size), Image.Resampling.BICUBIC))


def face_strip(
    crops: Sequence[np.ndarray], landmarks: Sequence[np.ndarray], persons: Sequence[int], size: int = 256
) -> np.ndarray:
    """Aligned crops side by side, ``size`` px each, landmarks drawn in each person's colour.

    ``crops[i]`` ``(S, S, 3)`` uint8 with ``landmarks[i]`` in crop pixels; ``persons[i]`` is the
    0-based person index of crop i (sets the dot colour and a colour bar under the face).
    """
    if not crops:
        raise ValueError("no faces to preview")
    tiles = []
    for crop, lmk, person in zip(crops, landmarks, persons, strict=True):
        scale = size / crop.shape[1]
        tile = draw_landmarks(
            resize_square(crop, size), np.asarray(lmk) * scale, person_color(person), radius=max(2, size // 96)
        )
        tile = tile.copy()
        tile[-max(4, size // 32) :] = person_color(person)
        tiles.append(tile)
    return np.concatenate(tiles, axis=1)


def combined_canvas(canvases: Sequence[LocationCanvas], size: tuple[int, int]) -> np.ndarray:
    """All identities' pasted faces on one white ``size = (w, h)`` image ``(h, w, 3)`` (later ones on top)."""
    out = np.full((size[1], size[0], 3), 255, np.uint8)
    for c in canvases:
        out[c.mask] = c.image[c.mask]
    return out


def draw_numbered_boxes(image: np.ndarray, boxes: Sequence[Sequence[float]]) -> np.ndarray:
    """A copy of ``image`` with box ``k`` (pixels x1,y1,x2,y2) outlined and labelled ``k + 1`` in person k's colour."""
    pil = Image.fromarray(np.asarray(image, dtype=np.uint8))
    draw = ImageDraw.Draw(pil)
    width = max(1, round(min(pil.size) / 200))
    for k, (x1, y1, x2, y2) in enumerate(boxes):
        draw.rectangle([x1, y1, x2, y2], outline=person_color(k), width=width)
        draw.text((x1 + 2 * width, y1 + width), str(k + 1), fill=person_color(k))
    return np.asarray(pil)


def side_by_side(references: Sequence[np.ndarray], canvas: np.ndarray, result: np.ndarray) -> np.ndarray:
    """References (``(S, S, 3)`` crops) stacked in a column, then ``canvas``, then ``result`` (same height)."""
    height, width = result.shape[:2]
    panels = []
    if references:
        side = max(1, height // len(references))
        column = np.full((height, side, 3), 255, np.uint8)
        for k, ref in enumerate(references):
            column[k * side : (k + 1) * side] = resize_square(ref, side)
        panels.append(column)
    canvas_img = np.asarray(Image.fromarray(np.asarray(canvas, np.uint8)).resize((width, height)))
    return np.concatenate(panels + [canvas_img, np.asarray(result, np.uint8)], axis=1)
