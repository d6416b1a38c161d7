"""ArcFace alignment: landmarks of a synthetic photo land on the template; alpha marks the photo's extent."""

from __future__ import annotations

import numpy as np
import pytest

from anyphoto_core.faces import aligned_crop_with_alpha, arcface_crop
from anyphoto_core.geometry import ARCFACE_TEMPLATE_112, arcface_template

pytestmark = pytest.mark.torchfree


def _similarity(scale, angle_deg, shift):
    t = np.deg2rad(angle_deg)
    return scale * np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]), np.asarray(shift, float)


def _dots_photo(points, shape, sigma):
    """Grey photo ``shape`` (H, W, 3) with one Gaussian blob centred at each sub-pixel ``points``."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    img = np.zeros(shape[:2], np.float64)
    for x, y in points:
        img += np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    return np.repeat((np.clip(img, 0, 1) * 255).round().astype(np.uint8)[:, :, None], 3, axis=2)


def _centroids(crop, expected, radius):
    yy, xx = np.mgrid[: crop.shape[0], : crop.shape[1]]
    out = []
    for ex, ey in expected:
        w = crop[:, :, 0].astype(np.float64) * (((xx - ex) ** 2 + (yy - ey) ** 2) < radius**2)
        out.append([(w * xx).sum() / w.sum(), (w * yy).sum() / w.sum()])
    return np.array(out)


def test_norm_crop_puts_known_landmarks_on_template():
    rot, shift = _similarity(2.7, 23.0, (150.3, 100.7))
    landmarks = ARCFACE_TEMPLATE_112 @ rot.T + shift  # the photo's true landmarks (sub-pixel)
    photo = _dots_photo(landmarks, (460, 420, 3), sigma=2.7 * 2.0)
    crop = arcface_crop(photo, landmarks)
    assert crop.shape == (112, 112, 3)
    err = np.abs(_centroids(crop, ARCFACE_TEMPLATE_112, 5.0) - ARCFACE_TEMPLATE_112)
    assert err.max() < 0.15


def test_large_crop_landmarks_and_alpha():
    rot, shift = _similarity(1.3, -12.0, (-20.0, 90.0))  # face near the left border: crop leaves the photo
    landmarks = ARCFACE_TEMPLATE_112 @ rot.T + shift
    photo = _dots_photo(landmarks, (260, 260, 3), sigma=1.3 * 2.0)
    crop, alpha, matrix = aligned_crop_with_alpha(photo, landmarks, 512)
    template = arcface_template(512)
    err = np.abs(_centroids(crop, template, 20.0) - template)
    assert err.max() < 0.3
    # alpha: 255 exactly where the crop pixel maps back inside the photo (checked away from the edge)
    inv = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))
    yy, xx = np.mgrid[:512, :512]
    src = np.stack([xx.ravel(), yy.ravel(), np.ones(512 * 512)]).T @ inv[:2].T
    inside_margin = (src[:, 0] > 0.5) & (src[:, 0] < 259 - 0.5) & (src[:, 1] > 0.5) & (src[:, 1] < 259 - 0.5)
    outside_margin = (src[:, 0] < -1) | (src[:, 0] > 260) | (src[:, 1] < -1) | (src[:, 1] > 260)
    assert np.all(alpha.ravel()[inside_margin] == 255)
    assert np.all(alpha.ravel()[outside_margin] == 0)
    assert outside_margin.sum() > 2000 and set(np.unique(alpha)) == {0, 255}
