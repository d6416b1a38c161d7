"""FaceRef / Identity from photos through the real insightface code path on the fixture pack."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures.face_models import SCENE_FACES, aligned_face_rgb, render_scene

from anyphoto_core.faces import (
    FaceTooSmallError,
    Identity,
    MultipleFacesError,
    NoFaceError,
    UnreadableImageError,
    build_identity,
    face_ref_from_photo,
    load_identities,
)
from anyphoto_core.geometry import arcface_template

pytestmark = pytest.mark.torchfree

A, B, C = SCENE_FACES


def _normalized(v):
    return v / np.linalg.norm(v)


def test_face_ref_contents(fixture_analyzer):
    ref = face_ref_from_photo(render_scene(), fixture_analyzer, name="scene")  # largest face = B
    assert ref.source == "scene" and ref.faces_found == 3
    assert np.allclose(ref.landmarks, B.landmarks, atol=1e-3) and ref.score == pytest.approx(0.8)
    hanks = aligned_face_rgb()
    inner = (slice(8, 104), slice(8, 104))  # the scene paste has a 1-px resampled rim
    assert np.abs(ref.crop112[inner].astype(int) - hanks[inner]).mean() < 3.0
    direct = fixture_analyzer.recognizer.embed(hanks)  # the face as insightface ships it, aligned
    assert ref.embedding.dtype == np.float32 and ref.embedding.shape == (512,)
    assert np.linalg.norm(ref.embedding) == pytest.approx(1.0, abs=1e-6)
    assert float(ref.embedding @ _normalized(direct)) > 0.99
    assert ref.crop.shape == (512, 512, 3) and ref.crop_alpha.shape == (512, 512)
    assert np.array_equal(ref.crop_landmarks, arcface_template(512))
    assert np.all(ref.crop_alpha == 255)  # B's aligned crop (280 photo px wide) lies inside the photo


def test_identity_embedding_and_primary(fixture_analyzer):
    scene = render_scene()
    refs = [face_ref_from_photo(scene, fixture_analyzer, rule="left_to_right", index=k) for k in range(3)]
    ident = Identity(tuple(refs))
    expected = _normalized(np.mean([_normalized(r.embedding) for r in refs], axis=0))
    assert np.allclose(ident.embedding, expected, atol=1e-6)
    assert ident.primary is refs[0]  # A has the best detection score (0.95)
    people = load_identities([[scene], [scene, scene]], fixture_analyzer, rule="best_score")
    assert len(people) == 2 and len(people[1].faces) == 2
    assert np.allclose(people[1].embedding, people[0].faces[0].embedding, atol=1e-6)


def test_no_face_error_and_skip(fixture_analyzer):
    blank = np.zeros((100, 100, 3), np.uint8)
    # the fixture detector is input-independent, so a no-face detector is needed: use a threshold above all scores
    fixture_analyzer.detector.model.det_thresh = 0.99
    try:
        with pytest.raises(NoFaceError, match=r"no face found in blank.png"):
            face_ref_from_photo(blank, fixture_analyzer, name="blank.png")
        with pytest.raises(NoFaceError, match=r"person 1: none of the 2 photo\(s\) has a detectable face"):
            load_identities([[blank, blank]], fixture_analyzer, on_no_face="skip")
        with pytest.raises(NoFaceError, match=r"person photo 1"):
            build_identity([blank], fixture_analyzer)
    finally:
        fixture_analyzer.detector.model.det_thresh = 0.5


def test_skip_keeps_the_photos_with_faces(fixture_analyzer):
    fixture_analyzer.detector.model.det_thresh = 0.92  # only A (0.95) passes
    try:
        ident = build_identity([render_scene()], fixture_analyzer, on_no_face="skip")
        assert ident.faces[0].faces_found == 1
    finally:
        fixture_analyzer.detector.model.det_thresh = 0.5


def test_several_faces_when_one_expected(fixture_analyzer):
    with pytest.raises(MultipleFacesError, match=r"3 faces found in group.jpg but one was expected"):
        face_ref_from_photo(render_scene(), fixture_analyzer, name="group.jpg", expect_single=True)


def test_face_too_small(fixture_analyzer):
    eye = float(np.linalg.norm(C.landmarks[1] - C.landmarks[0]))  # C: scale 1 -> 35.2 px
    with pytest.raises(FaceTooSmallError, match=rf"{eye:.1f} px between the eyes, at least 40 px"):
        face_ref_from_photo(render_scene(), fixture_analyzer, rule="index", index=1, min_eye_distance=40)


def test_unreadable_photo(fixture_analyzer, tmp_path):
    bad = tmp_path / "me.jpg"
    bad.write_text("no image")
    with pytest.raises(UnreadableImageError, match=r"me\.jpg could not be read"):
        build_identity([bad], fixture_analyzer)
