"""MiniWorld scenes: people placed on a background, in a prompted style, with exact landmarks.

A scene is drawn at :func:`supersample` x its size and reduced (LANCZOS) for anti-aliasing; each
person's sprite (:func:`train.miniworld.people.draw_person`) is placed with a similarity transform
(scale, roll, translation) and its landmarks are mapped through the same transform, so they are
exact. The style is applied to the finished picture and changes colours (sketch is greyscale,
night is dark blue, pixel art is quantised), so a person cannot be recognised by colour alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .people import FACE_CENTRE, FACE_HALF_HEIGHT, Appearance, Identity, draw_person

STYLES = ("photo", "sketch", "watercolour", "night", "pixel art")
COUNT_WORDS = ("no people", "one person", "two people", "three people", "four people")


@dataclass(frozen=True)
class Spot:
    """Where one person goes: face centre ``(x, y)`` and face height ``size`` (forehead to chin), output pixels."""

    x: float
    y: float
    size: float


@dataclass(frozen=True)
class Scene:
    """``image`` (H, W, 3) uint8; ``landmarks`` (N, 5, 2) and ``boxes`` (N, 4) output pixels; ``caption``."""

    image: np.ndarray
    landmarks: np.ndarray
    boxes: np.ndarray
    caption: str
    style: str


def supersample(size: int) -> int:
    """Drawing scale of a ``size`` scene: at least 256 pixels wide (the sprite's own size)."""
    return max(1, 256 // size)


def caption_for(style: str, people: int) -> str:
    """Prompt of a scene (at most 32 characters: the tiny text encoders' length)."""
    return f"{style}, {COUNT_WORDS[people]}"


def head_box(spot: Spot, margin: float = 1.2) -> np.ndarray:
    """Box around a face and its hair, ``(x1, y1, x2, y2)``: used to keep people apart."""
    half = spot.size / 2 * margin
    return np.array([spot.x - half, spot.y - half * 1.25, spot.x + half, spot.y + half])


def sample_spots(people: int, size: int, rng: np.random.Generator, tries: int = 5000) -> list[Spot]:
    """``people`` non-overlapping face spots inside a ``size`` x ``size`` image (face heights shrink with count;
    the ranges are for a 64-pixel scene and scale with ``size``)."""
    lo, hi = {1: (28, 40), 2: (22, 32), 3: (19, 26), 4: (16, 22)}[people]
    for attempt in range(tries):
        shrink = 0.95 ** (attempt // 100)  # crowded draws: faces get a little smaller every 100 tries
        spots, boxes = [], []
        for _ in range(people):
            s = float(rng.uniform(lo, hi)) * size / 64 * shrink
            x = float(rng.uniform(s * 0.7, size - s * 0.7))
            y = float(rng.uniform(s * 0.8, size - s * 0.6))
            box = head_box(Spot(x, y, s))
            if any(_overlap(box, other) for other in boxes):
                break
            spots.append(Spot(x, y, s))
            boxes.append(box)
        if len(spots) == people:
            return sorted(spots, key=lambda p: p.x)
    raise RuntimeError(f"could not place {people} people in {size}x{size} after {tries} tries")


def _overlap(a: np.ndarray, b: np.ndarray) -> bool:
    return not (a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1])


def draw_background(size: int, rng: np.random.Generator) -> Image.Image:
    """Sky gradient, ground and a few houses/trees, RGB."""
    sky_top, sky_low = rng.integers(60, 255, 3), rng.integers(60, 255, 3)
    t = np.linspace(0, 1, size)[:, None, None]
    sky = (sky_top * (1 - t) + sky_low * t).repeat(size, axis=1)
    img = Image.fromarray(sky.astype(np.uint8), "RGB")
    d = ImageDraw.Draw(img)
    horizon = int(size * rng.uniform(0.45, 0.8))
    d.rectangle([0, horizon, size, size], fill=tuple(int(v) for v in rng.integers(30, 200, 3)))
    for _ in range(int(rng.integers(1, 5))):
        x, w = rng.uniform(0, size), rng.uniform(0.1, 0.3) * size
        h = rng.uniform(0.15, 0.4) * size
        colour = tuple(int(v) for v in rng.integers(20, 230, 3))
        if rng.random() < 0.5:
            d.rectangle([x, horizon - h, x + w, horizon], fill=colour)
        else:
            d.ellipse([x, horizon - h, x + w, horizon - h * 0.2], fill=colour)
    return img


def _place(canvas: Image.Image, sprite: Image.Image, lmk: np.ndarray, spot: Spot, roll: float) -> np.ndarray:
    """Composite ``sprite`` so its face centre lands at ``spot`` (canvas pixels) with ``roll`` degrees;
    returns the landmarks mapped into the canvas."""
    s = spot.size / (2 * FACE_HALF_HEIGHT)
    th = np.radians(roll)
    rot = s * np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    centre = np.array(FACE_CENTRE)
    offset = np.array([spot.x, spot.y]) - rot @ centre  # canvas = rot @ sprite + offset
    inv = np.linalg.inv(rot)
    inv_off = -inv @ offset
    coeffs = (inv[0, 0], inv[0, 1], inv_off[0], inv[1, 0], inv[1, 1], inv_off[1])
    layer = sprite.transform(canvas.size, Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BILINEAR)
    canvas.alpha_composite(layer)
    return lmk @ rot.T + offset


def apply_style(image: np.ndarray, style: str, rng: np.random.Generator) -> np.ndarray:
    """Restyle an RGB uint8 picture: ``photo`` (noise), ``sketch`` (greyscale pencil), ``watercolour``
    (blurred, saturated, paper tint), ``night`` (dark, blue), ``pixel art`` (12 colours, side/64 blocks)."""
    img = Image.fromarray(image)
    if style == "photo":
        out = image.astype(np.float32) + rng.normal(0, 4, image.shape)
    elif style == "sketch":
        grey = img.convert("L")
        edges = np.asarray(grey.filter(ImageFilter.FIND_EDGES), dtype=np.float32)
        light = 150 + np.asarray(grey, dtype=np.float32) * 0.4
        out = np.repeat((light - edges * 1.6)[..., None], 3, axis=2)
    elif style == "watercolour":
        soft = np.asarray(img.filter(ImageFilter.GaussianBlur(0.7)), dtype=np.float32)
        mean = soft.mean(axis=2, keepdims=True)
        out = (mean + (soft - mean) * 1.5) * 0.8 + np.array([250, 240, 215]) * 0.2
    elif style == "night":
        arr = image.astype(np.float32)
        mean = arr.mean(axis=2, keepdims=True)
        out = (mean * 0.5 + arr * 0.5) * np.array([0.35, 0.45, 0.8]) + np.array([0, 5, 25])
    elif style == "pixel art":
        w, h = img.size
        block = max(1, w // 64)
        small = img.resize((w // block, h // block), Image.Resampling.BOX).quantize(12, dither=Image.Dither.NONE)
        out = np.asarray(small.convert("RGB").resize((w, h), Image.Resampling.NEAREST), dtype=np.float32)
    else:
        raise ValueError(f"unknown style {style!r}; one of {STYLES}")
    return np.clip(out, 0, 255).round().astype(np.uint8)


def render_scene(
    people: list[tuple[Identity, Appearance]], spots: list[Spot], style: str, size: int, rng: np.random.Generator
) -> Scene:
    """Draw ``people`` at ``spots`` on a random background in ``style``; exact landmarks and face boxes."""
    k = supersample(size)
    big = size * k
    canvas = draw_background(big, rng).convert("RGBA")
    landmarks, boxes = [], []
    for (ident, look), spot in sorted(zip(people, spots, strict=True), key=lambda p: p[1].size):
        sprite, lmk = draw_person(ident, look)
        scaled = Spot(spot.x * k, spot.y * k, spot.size * k)
        landmarks.append((_place(canvas, sprite, lmk, scaled, look.roll) / k, spot))
    order = {id(s): k for k, s in enumerate(spots)}
    landmarks.sort(key=lambda p: order[id(p[1])])
    image = np.asarray(canvas.convert("RGB").resize((size, size), Image.Resampling.LANCZOS))
    for _, spot in landmarks:
        half = spot.size / 2
        boxes.append([spot.x - half * 0.9, spot.y - half, spot.x + half * 0.9, spot.y + half])
    image = apply_style(image, style, rng)
    lmk = np.stack([p[0] for p in landmarks]) if landmarks else np.zeros((0, 5, 2))
    return Scene(image, lmk, np.asarray(boxes, dtype=np.float64).reshape(-1, 4), caption_for(style, len(people)), style)
