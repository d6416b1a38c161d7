"""Photo loading: every file layout ends as (H, W, 3) uint8 RGB with the right pixels."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from anyphoto_core.faces import UnreadableImageError, load_photo

pytestmark = pytest.mark.torchfree

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (20, 30, 3), dtype=np.uint8)


def test_grayscale_file(tmp_path):
    gray = RGB[:, :, 0]
    Image.fromarray(gray, "L").save(tmp_path / "g.png")
    out = load_photo(tmp_path / "g.png")
    assert out.shape == (20, 30, 3) and out.dtype == np.uint8
    assert np.array_equal(out, np.repeat(gray[:, :, None], 3, axis=2))


def test_rgba_is_composited_on_white(tmp_path):
    alpha = np.zeros((20, 30), np.uint8)
    alpha[:, 15:] = 255
    alpha[0, 0] = 128
    Image.fromarray(np.dstack([RGB, alpha]), "RGBA").save(tmp_path / "a.png")
    out = load_photo(tmp_path / "a.png").astype(int)
    assert np.array_equal(out[:, 15:], RGB[:, 15:])
    assert np.all(out[1:, :15] == 255)
    expected = np.round(RGB[0, 0].astype(float) * 128 / 255 + 255 * (1 - 128 / 255))
    assert np.all(np.abs(out[0, 0] - expected) <= 1)


def test_16bit_png(tmp_path):
    values = (np.arange(20 * 30, dtype=np.uint32).reshape(20, 30) * 109).astype(np.uint16)
    Image.fromarray(values).save(tmp_path / "d.png")
    out = load_photo(tmp_path / "d.png")
    assert np.array_equal(out[:, :, 1], np.round(values / 257.0).astype(np.uint8))


def test_palette_with_transparency(tmp_path):
    img = Image.new("P", (4, 4))
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    img.putdata([0] * 8 + [1] * 8)
    img.info["transparency"] = 1
    img.save(tmp_path / "p.png", transparency=1)
    out = load_photo(tmp_path / "p.png")
    assert np.array_equal(out[0, 0], [255, 0, 0]) and np.array_equal(out[3, 3], [255, 255, 255])


def test_exif_rotation_is_applied(tmp_path):
    img = Image.fromarray(RGB)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    img.save(tmp_path / "r.png", exif=exif)
    out = load_photo(tmp_path / "r.png")
    assert np.array_equal(out, np.rot90(RGB, k=-1))


def test_arrays():
    assert np.array_equal(load_photo(RGB), RGB)
    assert np.array_equal(load_photo(RGB.astype(np.float32) / 255.0), RGB)
    assert np.array_equal(load_photo(RGB.astype(np.uint16) * 257), RGB)
    with pytest.raises(UnreadableImageError, match=r"within \[0, 1\]"):
        load_photo(RGB.astype(np.float32))
    with pytest.raises(UnreadableImageError, match=r"expected an image array"):
        load_photo(np.zeros((4, 4, 2), np.uint8))


def test_unreadable_and_missing_files_are_named(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"this is not a jpeg")
    with pytest.raises(UnreadableImageError, match=r"broken\.jpg could not be read"):
        load_photo(bad)
    with pytest.raises(UnreadableImageError, match=r"nowhere\.png does not exist"):
        load_photo(tmp_path / "nowhere.png")
