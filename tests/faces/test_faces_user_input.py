"""Face input the user gets wrong, and what AnyPhoto says about it (issue 12). Torch-free."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
from fixtures.face_models import SCENE_FACES, render_scene
from PIL import Image, ImageFile

from anyphoto_core.faces import (
    FaceAnalyzer,
    FaceChoice,
    FaceError,
    UnreadableImageError,
    build_identity,
    face_ref_from_photo,
    load_photo,
)
from anyphoto_core.faces.photos import grey_tail_rows

pytestmark = pytest.mark.torchfree
A, B, C = SCENE_FACES


class _BlankAwareDetector:
    """The fixture detector, except that it finds nothing in an all-black photo."""

    def __init__(self, inner):
        self.inner, self.provider = inner, inner.provider

    def detect(self, image):
        return [] if not image.any() else self.inner.detect(image)


def _same_face(ref, face) -> bool:
    return np.allclose(ref.landmarks, face.landmarks, atol=1e-3)


def test_face_choice_applies_to_its_own_photo_only(fixture_analyzer):
    scene = render_scene()
    # photo 1: default rule (largest = B); photo 2: the 3rd face from the left (C), counted from 1 as on the CLI
    ident = build_identity(
        [scene, scene], fixture_analyzer, choices=[None, FaceChoice("left_to_right", 2, first=1)], person="person 1"
    )
    assert _same_face(ident.faces[0], B) and _same_face(ident.faces[1], C)
    # an index on photo 1 must not be applied to photo 2
    ident = build_identity([scene, scene], fixture_analyzer, choices=[FaceChoice("left_to_right", 0, first=1), None])
    assert _same_face(ident.faces[0], A) and _same_face(ident.faces[1], B)


def test_face_number_errors_quote_the_users_numbers(fixture_analyzer, tmp_path):
    for name in ("scene.png", "t1.png"):
        Image.fromarray(render_scene()).save(tmp_path / name)
    choices = [None, FaceChoice("left_to_right", 4, first=1)]  # the CLI's "scene.png,t1.png#5"
    with pytest.raises(
        FaceError,
        match=r"t1\.png: face 5 \(counted from the left, the first face is 1\) was asked for, but only 3 face\(s\) "
        r"were found \(valid: 1\.\.3\)",
    ):
        build_identity([tmp_path / "scene.png", tmp_path / "t1.png"], fixture_analyzer, choices=choices)


def test_skipped_photo_is_returned_as_a_notice(fixture_analyzer):
    analyzer = FaceAnalyzer(_BlankAwareDetector(fixture_analyzer.detector), fixture_analyzer.recognizer)
    blank = np.zeros((64, 64, 3), np.uint8)
    ident = build_identity([blank, render_scene()], analyzer, on_no_face="skip", person="person 2")
    assert len(ident.faces) == 1
    (notice,) = ident.notices
    assert notice.kind == "photo_skipped"
    assert notice.message.startswith("person 2: no face found in person 2 photo 1 (64x64 px)")
    assert notice.message.endswith("this photo was skipped")
    assert build_identity([render_scene()], analyzer).notices == ()


@pytest.mark.parametrize("size,msg", [(500, "multiple of 112 or 128"), (0, "at least 112"), (512.0, "whole number")])
def test_bad_crop_size_is_a_clear_error(fixture_analyzer, size, msg):
    with pytest.raises(FaceError, match=rf"crop_size .*{msg}"):
        face_ref_from_photo(render_scene(), fixture_analyzer, crop_size=size)


def _truncated_jpeg(path, height=240):
    rng = np.random.default_rng(3)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (height, 160, 3), dtype=np.uint8)).save(buf, "JPEG")
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return path


def test_truncated_jpeg_is_refused_even_when_the_host_allows_truncated_images(tmp_path):
    path = _truncated_jpeg(tmp_path / "half.jpg")
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = True  # what ComfyUI's image loader switches on
    try:
        with pytest.raises(UnreadableImageError, match=r"half\.jpg is truncated or corrupt .*re-export"):
            load_photo(path)
        assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored for the host
        # an image already decoded by the host (ComfyUI LoadImage) carries the grey tail: returned as a notice
        with Image.open(path) as im:
            decoded = np.asarray(im.convert("RGB"))
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous
    rows = grey_tail_rows(decoded)
    assert 8 <= rows < decoded.shape[0]
    assert np.all(decoded[-rows:] == 128) and not np.all(decoded[-rows - 1] == 128)


def test_truncated_array_photo_gives_a_notice(fixture_analyzer):
    scene = render_scene()
    scene[-40:] = 128
    ident = build_identity([scene], fixture_analyzer, person="person 1")
    (notice,) = ident.notices
    assert notice.kind == "photo_looks_truncated"
    assert "the bottom 40 of 640 rows are flat grey (128)" in notice.message
    assert build_identity([render_scene()], fixture_analyzer).notices == ()


def test_photo_over_pillows_pixel_limit_is_a_clear_error(tmp_path, monkeypatch):
    Image.new("RGB", (300, 200), (10, 20, 30)).save(tmp_path / "huge.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20_000)  # 60 000 px > 2x the limit
    with pytest.raises(UnreadableImageError, match=r"huge\.png has more pixels than Pillow opens safely .*Downscale"):
        load_photo(tmp_path / "huge.png")


def test_pack_imports_without_insightface_and_onnxruntime_and_says_what_to_install(face_pack_root):
    code = f"""
import sys
sys.modules["insightface"] = None
sys.modules["onnxruntime"] = None
import anyphoto_core.faces as faces
import anyphoto_core.app.cli
try:
    faces.load_face_analyzer({str(face_pack_root)!r})
except faces.FaceModelError as exc:
    print(exc)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "face analysis needs the Python package 'insightface'" in out
    assert "python install.py" in out and "pip install --no-deps insightface" in out
