"""Loading user photos as ``(H, W, 3)`` uint8 RGB arrays, whatever their file layout."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from ..notices import PHOTO_LOOKS_TRUNCATED, Notice
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
    if arr.dtype == np.uint8 and arr.shape[2] == 3:
        return np.ascontiguousarray(arr)
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


@contextlib.contextmanager
def _truncated_images_refused():
    """Decode with Pillow's ``LOAD_TRUNCATED_IMAGES`` off (hosts such as ComfyUI switch it on), so a
    partial file raises instead of loading with a grey bottom."""
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous


def grey_tail_rows(image: np.ndarray) -> int:
    """Rows at the bottom of an ``(H, W, 3)`` uint8 image that are exactly (128, 128, 128): what a
    truncated JPEG decodes to when the decoder is told to accept it. 0 for an ordinary photo."""
    flat = np.all(image == 128, axis=(1, 2))
    return int(np.argmin(flat[::-1])) if not flat.all() else len(flat)


def truncation_notice(image: np.ndarray, label: str, min_rows: int = 8) -> Notice | None:
    """A notice when ``image`` ends in at least ``min_rows`` flat-grey rows (a truncated file loaded anyway)."""
    rows = grey_tail_rows(image)
    if rows < min_rows:
        return None
    return Notice(
        PHOTO_LOOKS_TRUNCATED,
        f"{label}: the bottom {rows} of {image.shape[0]} rows are flat grey (128), the mark of a truncated or "
        "corrupt JPEG that was loaded anyway; re-export or re-upload the photo",
    )


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
            with _truncated_images_refused(), Image.open(path) as image:
                image.load()
                return pil_to_rgb(image)
        except Image.DecompressionBombError as exc:
            raise UnreadableImageError(
                f"photo {label} has more pixels than Pillow opens safely ({exc}). Downscale it (for example to "
                "6000 px on the long side) and try again"
            ) from None
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            damaged = not isinstance(exc, UnidentifiedImageError) and any(
                word in str(exc) for word in ("truncated", "broken data")
            )
            what = "is truncated or corrupt" if damaged else "could not be read as an image"
            raise UnreadableImageError(
                f"photo {label} {what} ({exc}); re-export or re-download the photo (a partial file would give a "
                "half-grey face)"
            ) from None
    if isinstance(source, np.ndarray):
        return array_to_rgb(source, label)
    raise UnreadableImageError(
        f"{label}: expected a file path, a PIL image or a numpy array, got {type(source).__name__}"
    )
