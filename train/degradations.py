"""Face-patch degradations for the location canvas (paper appendix 0.A.2, step 4).

Each degradation maps a :class:`~anyphoto_core.canvas.FacePatch` (``image`` (S, S, 3) uint8 RGB,
``alpha`` (S, S) uint8, ``landmarks`` (5, 2) patch pixels) to a new one of the same shape and dtype,
using PIL/numpy and a ``numpy.random.Generator``. Only ``hflip`` moves pixels, so only it changes
``alpha`` and the landmarks (mirrored, and left/right points swapped so ArcFace order holds).
Face aging (in the paper's list) is omitted: it needs a generative aging model we do not ship.
"""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from anyphoto_core.canvas import FacePatch

Rng = np.random.Generator


def _pil(patch: FacePatch) -> Image.Image:
    return Image.fromarray(patch.image)


def _with(patch: FacePatch, image) -> FacePatch:
    return replace(patch, image=np.asarray(image, dtype=np.uint8).copy())


def color_jitter(p: FacePatch, rng: Rng) -> FacePatch:
    """Brightness, contrast, saturation factors in [0.6, 1.4], then hue shift up to +-0.05 turn."""
    img = _pil(p)
    for enhance in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        img = enhance(img).enhance(rng.uniform(0.6, 1.4))
    hsv = np.asarray(img.convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(np.int16) + int(rng.uniform(-0.05, 0.05) * 255)) % 256
    return _with(p, Image.fromarray(hsv, "HSV").convert("RGB"))


def grayscale(p: FacePatch, rng: Rng) -> FacePatch:
    return _with(p, _pil(p).convert("L").convert("RGB"))


def blur(p: FacePatch, rng: Rng) -> FacePatch:
    """Gaussian blur, sigma in [0.5, 3] % of the patch side."""
    return _with(p, _pil(p).filter(ImageFilter.GaussianBlur(rng.uniform(0.005, 0.03) * p.image.shape[0])))


def sharpness(p: FacePatch, rng: Rng) -> FacePatch:
    return _with(p, ImageEnhance.Sharpness(_pil(p)).enhance(rng.uniform(0.0, 3.0)))


def autocontrast(p: FacePatch, rng: Rng) -> FacePatch:
    return _with(p, ImageOps.autocontrast(_pil(p)))


#: ArcFace landmark order under a mirror: left eye <-> right eye, left mouth <-> right mouth.
FLIP_ORDER = (1, 0, 2, 4, 3)


def hflip(p: FacePatch, rng: Rng) -> FacePatch:
    """Mirror image and alpha; landmarks ``x -> (W - 1) - x`` (pixel centres) and left/right swapped."""
    w = p.image.shape[1]
    lmk = np.asarray(p.landmarks, np.float64)[list(FLIP_ORDER)].copy()
    lmk[:, 0] = (w - 1) - lmk[:, 0]
    return FacePatch(p.image[:, ::-1].copy(), p.alpha[:, ::-1].copy(), lmk)


def salt_and_pepper(p: FacePatch, rng: Rng) -> FacePatch:
    """Up to 5 % of pixels set to black or white."""
    img = p.image.copy()
    hit = rng.random(img.shape[:2]) < rng.uniform(0.005, 0.05)
    img[hit] = np.where(rng.random((int(hit.sum()), 1)) < 0.5, 0, 255).astype(np.uint8)
    return _with(p, img)


def gaussian_noise(p: FacePatch, rng: Rng) -> FacePatch:
    """Additive N(0, sigma) with sigma in [3, 20] grey levels, clipped."""
    noise = rng.normal(0.0, rng.uniform(3.0, 20.0), p.image.shape)
    return _with(p, np.clip(p.image.astype(np.float64) + noise, 0, 255).round())


def occlusion(p: FacePatch, rng: Rng) -> FacePatch:
    """One random grey rectangle covering 5-20 % of the patch."""
    h, w = p.image.shape[:2]
    area = rng.uniform(0.05, 0.2) * h * w
    aspect = rng.uniform(0.5, 2.0)
    rh, rw = max(1, min(h, int(np.sqrt(area * aspect)))), max(1, min(w, int(np.sqrt(area / aspect))))
    y, x = int(rng.integers(0, h - rh + 1)), int(rng.integers(0, w - rw + 1))
    img = p.image.copy()
    img[y : y + rh, x : x + rw] = rng.integers(0, 256, 3, dtype=np.uint8)
    return _with(p, img)


def illumination(p: FacePatch, rng: Rng) -> FacePatch:
    """A linear light gradient in a random direction: gain from 1-a to 1+a, a in [0.2, 0.6]."""
    h, w = p.image.shape[:2]
    angle, amount = rng.uniform(0, 2 * np.pi), rng.uniform(0.2, 0.6)
    yy, xx = np.mgrid[0:h, 0:w]
    ramp = ((xx - w / 2) * np.cos(angle) + (yy - h / 2) * np.sin(angle)) / (0.5 * max(h, w))
    gain = 1.0 + amount * np.clip(ramp, -1, 1)
    return _with(p, np.clip(p.image * gain[..., None], 0, 255).round())


def jpeg(p: FacePatch, rng: Rng) -> FacePatch:
    buf = io.BytesIO()
    _pil(p).save(buf, format="JPEG", quality=int(rng.integers(10, 60)))
    return _with(p, Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def down_up(p: FacePatch, rng: Rng) -> FacePatch:
    """Resolution loss: bilinear downscale by 2-8x and back up."""
    h, w = p.image.shape[:2]
    f = rng.uniform(2.0, 8.0)
    small = _pil(p).resize((max(1, int(w / f)), max(1, int(h / f))), Image.Resampling.BILINEAR)
    return _with(p, small.resize((w, h), Image.Resampling.BILINEAR))


DEGRADATIONS = {
    "color_jitter": color_jitter,
    "grayscale": grayscale,
    "blur": blur,
    "sharpness": sharpness,
    "autocontrast": autocontrast,
    "hflip": hflip,
    "salt_and_pepper": salt_and_pepper,
    "gaussian_noise": gaussian_noise,
    "occlusion": occlusion,
    "illumination": illumination,
    "jpeg": jpeg,
    "down_up": down_up,
}

#: Probability of each degradation (the paper lists them without probabilities; ours).
DEFAULT_PROBABILITIES = {
    "color_jitter": 0.5,
    "grayscale": 0.1,
    "blur": 0.2,
    "sharpness": 0.2,
    "autocontrast": 0.1,
    "hflip": 0.5,
    "salt_and_pepper": 0.05,
    "gaussian_noise": 0.15,
    "occlusion": 0.1,
    "illumination": 0.2,
    "jpeg": 0.2,
    "down_up": 0.2,
}


def resolve_probabilities(overrides: dict[str, float] | None) -> dict[str, float]:
    """Defaults updated by ``overrides``; unknown names and probabilities outside [0, 1] are errors."""
    probs = dict(DEFAULT_PROBABILITIES)
    for name, prob in (overrides or {}).items():
        if name not in DEGRADATIONS:
            raise ValueError(f"unknown degradation {name!r}; known: {sorted(DEGRADATIONS)}")
        if not 0.0 <= float(prob) <= 1.0:
            raise ValueError(f"degradation {name!r} probability must be in [0, 1], got {prob}")
        probs[name] = float(prob)
    return probs


def degrade(patch: FacePatch, rng: Rng, probabilities: dict[str, float]) -> FacePatch:
    """Apply each degradation independently with its probability, in :data:`DEGRADATIONS` order."""
    for name, fn in DEGRADATIONS.items():
        if rng.random() < probabilities.get(name, 0.0):
            patch = fn(patch, rng)
    return patch
