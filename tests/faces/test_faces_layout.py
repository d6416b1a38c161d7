"""Placements from a layout photo: cover mapping, left-to-right order, dropped faces."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures.face_models import SCENE_FACES, render_scene

from anyphoto_core.faces import NoFaceError, placements_from_layout_photo

pytestmark = pytest.mark.torchfree

A, B, C = SCENE_FACES


def test_cover_mapping_and_order(fixture_analyzer):
    # 640x640 layout onto 1024x768: scale 1.6 -> 1024x1024, 128 px cropped at top and bottom
    layout = placements_from_layout_photo(render_scene(), fixture_analyzer.detector, 1024, 768)
    assert layout.notices == ()
    placements = layout.placements
    assert len(placements) == 3
    for placement, face in zip(placements, (A, B, C), strict=True):
        assert np.allclose(placement.landmarks, face.landmarks * 1.6 - [0, 128], atol=1e-3)


def test_faces_outside_the_crop_are_dropped(fixture_analyzer):
    # onto 300x1000: scale 1000/640, x offset -350 -> only B (photo x 400) stays inside
    layout = placements_from_layout_photo(render_scene(), fixture_analyzer.detector, 300, 1000, name="pose.png")
    placements = layout.placements
    assert len(placements) == 1
    # the notice names the dropped faces by their number from the left and their box in the photo
    (notice,) = layout.notices
    assert notice.kind == "layout_faces_dropped"
    a_box, c_box = A.box, C.box
    assert "2 of 3 face(s) of the layout photo pose.png (640x640 px" in notice.message
    assert f"face 1 at x={a_box[0]:.0f}..{a_box[2]:.0f}, y={a_box[1]:.0f}..{a_box[3]:.0f}" in notice.message
    assert f"face 3 at x={c_box[0]:.0f}..{c_box[2]:.0f}, y={c_box[1]:.0f}..{c_box[3]:.0f}" in notice.message
    assert "face 2 " not in notice.message
    assert np.allclose(placements[0].landmarks, B.landmarks * 1000 / 640 - [350, 0], atol=1e-3)


def test_no_face_in_layout(fixture_analyzer):
    fixture_analyzer.detector.model.det_thresh = 0.99
    try:
        with pytest.raises(NoFaceError, match="no face found in the layout photo pose.png"):
            placements_from_layout_photo(render_scene(), fixture_analyzer.detector, 512, 512, name="pose.png")
    finally:
        fixture_analyzer.detector.model.det_thresh = 0.5
