"""Face choice rules, on the fixture scene (insightface SCRFD path) and on the real group photo (CenterFace)."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures.face_models import SCENE_FACES, render_scene

from anyphoto_core.faces import FaceError, choose_face, load_photo

pytestmark = pytest.mark.torchfree

A, B, C = SCENE_FACES


def _is(det, face):
    return np.allclose(det.landmarks, face.landmarks, atol=1e-3)


def test_fixture_detector_returns_the_scene_faces_in_score_order(fixture_analyzer):
    dets = fixture_analyzer.detector.detect(render_scene())
    assert [round(d.score, 2) for d in dets] == [0.95, 0.90, 0.80]
    assert _is(dets[0], A) and _is(dets[1], C) and _is(dets[2], B)
    assert np.allclose(dets[2].box, B.box, atol=1e-3)


def test_rules_on_fixture_scene(fixture_analyzer):
    dets = fixture_analyzer.detector.detect(render_scene())
    assert _is(choose_face(dets, "largest"), B)
    assert _is(choose_face(dets, "best_score"), A)
    assert [_is(choose_face(dets, "left_to_right", k), f) for k, f in enumerate((A, B, C))] == [True] * 3
    assert _is(choose_face(dets, "index", 1), C)
    with pytest.raises(
        FaceError,
        match=r"^photo: face 3 \(in detector order, the first face is 0\) was asked for, but only 3 face\(s\) "
        r"were found \(valid: 0\.\.2\)$",
    ):
        choose_face(dets, "index", 3)
    # the user's own numbering (the CLI's #K counts from 1) in the message
    with pytest.raises(FaceError, match=r"t1\.jpg: face 5 \(counted from the left, the first face is 1\) .* 1\.\.3\)"):
        choose_face(dets, "left_to_right", 4, what="t1.jpg", first=1)
    with pytest.raises(FaceError, match="unknown face choice rule 'biggest'"):
        choose_face(dets, "biggest")


def test_rules_on_group_photo(centerface_detector, group_photo_path):
    photo = load_photo(group_photo_path)
    dets = centerface_detector.detect(photo)
    assert len(dets) == 6
    centers = np.array([d.landmarks.mean(axis=0) for d in dets])
    # independent reference for left_to_right: the landmarks' mean x (not the box the rule uses)
    by_x = np.argsort(centers[:, 0])
    for k in range(6):
        assert choose_face(dets, "left_to_right", k) is dets[by_x[k]]
        assert choose_face(dets, "index", k) is dets[k]
    areas = [(d.box[2] - d.box[0]) * (d.box[3] - d.box[1]) for d in dets]
    assert choose_face(dets, "largest") is dets[int(np.argmax(areas))]
    assert choose_face(dets, "best_score").score == max(d.score for d in dets)
    # every landmark lies inside its own box, eyes above the mouth
    for d in dets:
        assert np.all((d.landmarks >= d.box[:2] - 2) & (d.landmarks <= d.box[2:] + 2))
        assert d.landmarks[:2, 1].max() < d.landmarks[3:, 1].min()
