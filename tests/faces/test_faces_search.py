"""Small faces in large photos: the tiled second pass and its documented minimum (issue 12). Torch-free."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from fixtures.face_models import insightface_image

from anyphoto_core.faces import FaceAnalyzer, NoFaceError, face_ref_from_photo, load_photo
from anyphoto_core.faces.backends import Detection
from anyphoto_core.faces.search import (
    SEARCH_MIN_EYE_DISTANCE,
    merge_detections,
    second_pass_scale,
    tile_origins,
)

pytestmark = pytest.mark.torchfree


def test_tiles_cover_the_photo_with_overlap():
    starts = tile_origins(2500, 1024)
    assert starts[0] == 0 and starts[-1] + 1024 == 2500
    assert all(b - a <= 1024 - 128 for a, b in zip(starts, starts[1:], strict=False))
    assert tile_origins(800, 1024) == [0]


def test_second_pass_only_where_the_first_missed_detail():
    assert second_pass_scale((4000, 6000, 3), 1024) == pytest.approx(10 / 16)
    assert tile_origins(4500, 1024) == [0, 896, 1792, 2688, 3476]  # 128 px overlap
    assert second_pass_scale((600, 900, 3), 1024) is None  # pass 1 already at full size
    assert second_pass_scale((1200, 1500, 3), 1024) is None  # pass 1 at 0.68 > 0.625


def test_merge_keeps_the_best_of_overlapping_boxes():
    lmk = np.zeros((5, 2))
    a = Detection(np.array([0.0, 0, 100, 100]), 0.9, lmk)
    b = Detection(np.array([5.0, 5, 105, 105]), 0.8, lmk)
    c = Detection(np.array([300.0, 0, 400, 100]), 0.7, lmk)
    assert merge_detections([b, c, a]) == [a, c]


@pytest.fixture(scope="module")
def small_face_photo(centerface_detector):
    """A 7200x1200 photo holding one face of the wheel's group photo shrunk to 17 px between the eyes,
    and that face's detection in the shrunk crop at its own size (the independent reference)."""
    group = load_photo(insightface_image("t1.jpg"))
    face = max(centerface_detector.detect(group), key=lambda d: d.area)
    x1, y1, x2, y2 = face.box.astype(int)
    w, h = x2 - x1, y2 - y1
    crop = group[max(0, y1 - h) : y2 + h, max(0, x1 - w) : x2 + w]
    scale = 17.0 / face.eye_distance
    small = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    photo = np.full((1200, 7200, 3), 120, np.uint8)
    y0, x0 = 500, 5100
    photo[y0 : y0 + small.shape[0], x0 : x0 + small.shape[1]] = small
    (ref,) = centerface_detector.detect(small)
    return photo, ref.landmarks + [x0, y0], ref.eye_distance


def test_a_face_with_17px_eyes_in_a_large_photo_is_found(centerface_detector, small_face_photo):
    photo, landmarks, eye = small_face_photo
    assert eye >= SEARCH_MIN_EYE_DISTANCE
    assert centerface_detector._detect_shrunk(photo) == []  # the 1024 px pass alone misses it
    (found,) = centerface_detector.detect(photo)
    assert np.abs(found.landmarks - landmarks).max() < 0.25 * eye  # found where it is


def test_no_face_message_says_what_was_searched(centerface_detector):
    class _Unused:
        provider = "none"

    analyzer = FaceAnalyzer(centerface_detector, _Unused())
    with pytest.raises(
        NoFaceError,
        match=r"no face found in wall\.jpg \(the 3000x1000 px photo was searched shrunk to 1024 px and again in "
        r"tiles at 1875 px, which finds faces with at least 16 px between the eyes\)",
    ):
        face_ref_from_photo(np.full((1000, 3000, 3), 200, np.uint8), analyzer, name="wall.jpg")
    with pytest.raises(NoFaceError, match=r"\(the whole 300x200 px photo was searched at full detail\)"):
        face_ref_from_photo(np.full((200, 300, 3), 200, np.uint8), analyzer, name="small.jpg")
