"""Location canvas (paper appendix 0.A.3) and box/landmark geometry."""

import warnings

import numpy as np
import pytest
import skimage.transform
from PIL import Image, ImageDraw

from anyphoto_core import geometry
from anyphoto_core.canvas import FacePatch, build_location_canvas, paste_scale
from anyphoto_core.geometry import (
    ARCFACE_TEMPLATE_112,
    arcface_template,
    box_to_landmarks,
    estimate_similarity,
    landmarks_to_box,
)

pytestmark = pytest.mark.torchfree

DOT_COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255, 0, 255)]


def _dotted_patch(size=512, radius=12):
    """A grey face patch with one coloured disc centred on each template landmark."""
    lmk = arcface_template(size)
    img = Image.new("RGB", (size, size), (128, 128, 128))
    draw = ImageDraw.Draw(img)
    for (x, y), c in zip(lmk, DOT_COLOURS, strict=True):
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=c)
    return FacePatch.opaque(np.asarray(img), lmk)


def _centroid(image, colour, tol=60):
    diff = np.abs(image.astype(int) - np.array(colour)).sum(axis=-1)
    ys, xs = np.nonzero(diff < tol)
    assert len(xs) > 0, f"colour {colour} not found on the canvas"
    return np.array([xs.mean(), ys.mean()])


@pytest.mark.parametrize("scale,shift", [(0.5, (300.0, 200.0)), (0.27, (41.3, 77.8)), (0.9, (10.0, 5.0))])
def test_pasted_landmarks_land_on_targets(scale, shift):
    patch = _dotted_patch()
    target = patch.landmarks * scale + np.array(shift)
    raw, clamped = paste_scale(patch.landmarks, target)
    assert raw == pytest.approx(scale, rel=1e-9)  # reciprocal of the image->patch scale
    canvas = build_location_canvas(patch, target, (640, 512))
    found = np.array([_centroid(canvas.image, c) for c in DOT_COLOURS])
    err = np.linalg.norm(found - target, axis=1).mean()
    assert err < 1.0, f"mean landmark error {err:.3f} px"


def test_scale_is_clamped_and_reported():
    patch = _dotted_patch()
    target = patch.landmarks * 10.0
    raw, clamped = paste_scale(patch.landmarks, target, scale_range=(0.1, 2.0))
    assert raw == pytest.approx(10.0) and clamped == 2.0
    canvas = build_location_canvas(patch, target, (256, 256), scale_range=(0.1, 2.0))
    assert canvas.scale == 2.0 and canvas.patch_size == (1024, 1024)


def test_paste_across_border_is_clipped():
    patch = _dotted_patch()
    target = patch.landmarks * 0.5 + np.array([-100.0, 180.0])  # hangs off the left and bottom
    canvas = build_location_canvas(patch, target, (300, 300))
    x0, y0 = canvas.offset
    w, h = canvas.patch_size
    expected = max(0, min(300, x0 + w) - max(0, x0)) * max(0, min(300, y0 + h) - max(0, y0))
    assert canvas.mask.shape == (300, 300)
    assert canvas.mask.sum() == expected
    assert canvas.image.shape == (300, 300, 3)


def test_alpha_and_mask_agree_and_background_is_white():
    size = 512
    face = np.zeros((size, size, 3), np.uint8)
    face[..., 0] = 200
    yy, xx = np.mgrid[:size, :size]
    alpha = (((xx - 256) ** 2 + (yy - 280) ** 2) < 200**2).astype(np.uint8) * 255
    patch = FacePatch(face, alpha, arcface_template(size))
    target = patch.landmarks * 0.4 + np.array([60.0, 40.0])
    canvas = build_location_canvas(patch, target, (320, 288))
    is_face = np.all(canvas.image == (200, 0, 0), axis=-1)
    is_white = np.all(canvas.image == 255, axis=-1)
    assert np.array_equal(is_face, canvas.mask)
    assert np.array_equal(is_white, ~canvas.mask)
    assert 0 < canvas.mask.sum() < alpha.sum() / 255  # shrunk disc


def test_box_landmark_round_trip():
    box = (100.0, 50.0, 178.0, 151.0)  # same proportions as the template box
    lmk = box_to_landmarks(box)
    np.testing.assert_allclose(landmarks_to_box(lmk), box, atol=1e-6)
    # eyes above the mouth, left eye left of right eye, all inside the box
    assert lmk[0, 0] < lmk[1, 0] and lmk[0, 1] < lmk[3, 1]
    assert np.all((lmk[:, 0] > box[0]) & (lmk[:, 0] < box[2]) & (lmk[:, 1] > box[1]) & (lmk[:, 1] < box[3]))


def test_template_sizes_follow_insightface():
    np.testing.assert_allclose(arcface_template(112), ARCFACE_TEMPLATE_112)
    np.testing.assert_allclose(arcface_template(224), ARCFACE_TEMPLATE_112 * 2)
    t512 = arcface_template(512)  # 512 = 4 x 128: scale 4, shifted 8*4 px right
    np.testing.assert_allclose(t512[:, 1], ARCFACE_TEMPLATE_112[:, 1] * 4)
    np.testing.assert_allclose(t512[:, 0], ARCFACE_TEMPLATE_112[:, 0] * 4 + 32)
    with pytest.raises(ValueError, match="multiple of 112 or 128"):
        arcface_template(100)


@pytest.mark.parametrize("bad,msg", [((10, 10, 5, 20), "empty"), ((1, 2, 3), "4 numbers"), ((0, 0, np.nan, 4), "NaN")])
def test_bad_boxes_are_named(bad, msg):
    with pytest.raises(ValueError, match=msg):
        box_to_landmarks(bad)


class _SimilarityBefore026:
    """scikit-image < 0.26's API (Python 3.10 and the oldest pins get it): ``estimate`` in place, no
    ``from_estimate``."""

    def __init__(self):
        self._fit = skimage.transform.SimilarityTransform()

    def estimate(self, src, dst):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # deprecated from 0.26 on
            return self._fit.estimate(src, dst)

    @property
    def params(self):
        return self._fit.params


@pytest.mark.parametrize("api", ["installed", "before 0.26"])
def test_similarity_fit_recovers_a_known_similarity_with_either_scikit_image_api(api, monkeypatch):
    if api == "before 0.26":
        monkeypatch.setattr(geometry, "SimilarityTransform", _SimilarityBefore026)
    angle, scale, shift = 0.3, 1.7, np.array([12.5, -4.0])
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = ARCFACE_TEMPLATE_112
    matrix = estimate_similarity(src, src @ rotation.T + shift)
    np.testing.assert_allclose(matrix[:2, :2], rotation, atol=1e-9)
    np.testing.assert_allclose(matrix[:2, 2], shift, atol=1e-9)
    with pytest.raises(ValueError, match="degenerate"):
        estimate_similarity(np.zeros((5, 2)), src)
