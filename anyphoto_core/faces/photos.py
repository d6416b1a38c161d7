"""Loading user photos as ``(H, W, 3)`` uint8 RGB arrays, whatever their file layout."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import UnreadableImageError


def photo_name(source, fallback: str) -> str:
    """A human-readable name for error messages: the file name for paths, else ``fallback``."""
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    return fallback


def _composite_on_white(rgba: Image.Image) -> Image.Image:
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def pil_to_rgb(image: Image.Image) -> np.ndarray:
    """Convert any PIL image to ``(H, W, 3)`` uint8 RGB.

    EXIF orientation is applied; transparency (RGBA, LA, palette with transparency) is composited
    on white; 16-bit (and 32-bit integer, taken as 16-bit range) images are scaled by 255/65535.
    """
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        gray = np.asarray(image, dtype=np.float64) * (255.0 / 65535.0)
        gray = np.clip(np.round(gray), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if image.mode == "F":
        raise UnreadableImageError("floating-point (mode 'F') images are not supported; save the photo as 8-bit")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        return np.array(_composite_on_white(image.convert("RGBA")))
    return np.array(image.convert("RGB"))


def array_to_rgb(array: np.ndarray, name: str) -> np.ndarray:
    """Convert an ``(H, W)``, ``(H, W, 1|3|4)`` array to ``(H, W, 3)`` uint8 RGB.

    uint8 is taken as is, uint16 is scaled by 255/65535, float arrays must be in [0, 1].
    A 4th channel is alpha, composited on white.
    """
    arr = np.asarray(array)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise UnreadableImageError(f"{name}: expected an image array (H, W), (H, W, 3) or (H, W, 4), got {arr.shape}")
    if arr.dtype == np.uint8:
        data = arr.astype(np.float64)
    elif arr.dtype == np.uint16:
        data = arr.astype(np.float64) * (255.0 / 65535.0)
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)) or arr.min() < 0.0 or arr.max() > 1.0:
            raise UnreadableImageError(f"{name}: float image values must be finite and within [0, 1]")
        data = arr.astype(np.float64) * 255.0
    else:
        raise UnreadableImageError(f"{name}: unsupported dtype {arr.dtype} (use uint8, uint16 or float in [0, 1])")
    if data.shape[2] == 1:
        data = np.repeat(data, 3, axis=2)
    elif data.shape[2] == 4:
        alpha = data[:, :, 3:4] / 255.0
        data = data[:, :, :3] * alpha + 255.0 * (1.0 - alpha)
    return np.clip(np.round(data), 0, 255).astype(np.uint8)


def load_photo(source, name: str | None = None) -> np.ndarray:
    """Load a photo (path, PIL image or array) as ``(H, W, 3)`` uint8 RGB.

    Raises :class:`UnreadableImageError` naming the file when it is missing or not an image.
    """
    label = name or photo_name(source, "image")
    if isinstance(source, Image.Image):
        return pil_to_rgb(source)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise UnreadableImageError(f"photo {label} does not exist or is not a file")
        try:
            with Image.open(path) as image:
                image.load()
                return pil_to_rgb(image)
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise UnreadableImageError(f"photo {label} could not be read as an image ({exc})") from None
    if isinstance(source, np.ndarray):
        return array_to_rgb(source, label)
    raise UnreadableImageError(
        f"{label}: expected a file path, a PIL image or a numpy array, got {type(source).__name__}"
    )
