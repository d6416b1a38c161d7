"""Preview images for hosts: aligned faces with landmarks, canvases, face thumbnails.

All functions take and return uint8 RGB arrays ``(H, W, 3)`` (numpy) so any host can show them;
ComfyUI nodes convert to IMAGE tensors ``(B, H, W, 3)`` float in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

#: One colour per person, the location editor's palette (docs/location_editor.md): 1 red, 2 green...
PERSON_COLORS = (
    (230, 60, 60), (60, 180, 75), (60, 110, 230), (245, 130, 48), (145, 30, 180),
    (70, 200, 220), (220, 50, 200), (150, 220, 60), (250, 160, 190), (230, 210, 40),
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


def face_strip(crops: Sequence[np.ndarray], landmarks: Sequence[np.ndarray], persons: Sequence[int],
               size: int = 256) -> np.ndarray:
    """Aligned crops side by side, ``size`` px each, landmarks drawn in each person's colour.

    ``crops[i]`` ``(S, S, 3)`` uint8 with ``landmarks[i]`` in crop pixels; ``persons[i]`` is the
    0-based person index of crop i (sets the dot colour and a colour bar under the face).
    """
    if not crops:
        raise ValueError("no faces to preview")
    tiles = []
    for crop, lmk, person in zip(crops, landmarks, persons, strict=True):
        scale = size / crop.shape[1]
        tile = draw_landmarks(resize_square(crop, size), np.asarray(lmk) * scale, person_color(person),
                              radius=max(2, size // 96))
        tile = tile.copy()
        tile[-max(4, size // 32):] = person_color(person)
        tiles.append(tile)
    return np.concatenate(tiles, axis=1)
