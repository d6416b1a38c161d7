"""AnyPhoto Load Face Refs without ComfyUI: per-person face choice, shared-face warnings, and the file
fingerprint that makes ComfyUI re-read a photo replaced under the same name."""

import json
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from fixtures.face_models import render_scene
from integration.anyphoto_pack import load_pack

PACK = load_pack()
WARNINGS = PACK.feedback.UI_KEY


def _image(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array.astype(np.float32) / 255.0)[None]


@dataclass
class PortraitAwareDetector:
    """The fixture detector (3 faces wherever it looks), but a photo whose top-left pixel is pure red is a
    one-person portrait: only its leftmost face is returned."""

    base: object

    def detect(self, image):
        found = sorted(self.base.detect(image), key=lambda d: d.center_x)
        return found[:1] if tuple(image[0, 0]) == (255, 0, 0) else found


@dataclass
class Analyzer:
    detector: object
    recognizer: object
    recognizer_name: str = ""


@pytest.fixture(scope="module")
def group_photo():
    return render_scene()


def _load(analyzer, rule, face_index, **people):
    return PACK.faces.AnyPhotoLoadFaceRefs().load(analyzer, rule, face_index, "error", "", **people)


def test_one_group_photo_gives_each_person_their_own_face(fixture_analyzer, group_photo):
    by_x = sorted(fixture_analyzer.detector.detect(group_photo), key=lambda d: d.center_x)
    out = _load(fixture_analyzer, "left_to_right", "0, 2", person_1=_image(group_photo), person_2=_image(group_photo))
    refs, _ = out["result"]
    np.testing.assert_allclose(refs[0].primary.box, by_x[0].box)
    np.testing.assert_allclose(refs[1].primary.box, by_x[2].box)
    assert out["ui"][WARNINGS] == []


def test_same_face_for_two_people_is_a_visible_warning(fixture_analyzer, group_photo):
    out = _load(fixture_analyzer, "largest", "", person_1=_image(group_photo), person_2=_image(group_photo))
    (message,) = out["ui"][WARNINGS]
    assert message.startswith("person 1 and person 2 got the same face") and "left_to_right" in message


def test_face_number_of_one_person_does_not_apply_to_another(fixture_analyzer, group_photo):
    portrait = group_photo.copy()
    portrait[0, 0] = (255, 0, 0)
    analyzer = Analyzer(PortraitAwareDetector(fixture_analyzer.detector), fixture_analyzer.recognizer)
    refs, _ = _load(analyzer, "left_to_right", "2", person_1=_image(group_photo), person_2=_image(portrait))["result"]
    by_x = sorted(fixture_analyzer.detector.detect(group_photo), key=lambda d: d.center_x)
    np.testing.assert_allclose(refs[0].primary.box, by_x[2].box)
    np.testing.assert_allclose(refs[1].primary.box, by_x[0].box)  # the portrait's only face


@pytest.mark.parametrize(
    ("rule", "text", "error"),
    [
        ("left_to_right", "0, 1, 2", "3 entries"),
        ("index", "1, x", "whole numbers"),
        ("index", "-1", "whole numbers"),
        ("largest", "0, 1", "face_index 1 for person 2 is used only by the index and left_to_right rules"),
    ],
)
def test_face_index_text_errors_name_the_problem(rule, text, error):
    with pytest.raises(ValueError, match=error):
        PACK.faces.parse_face_indices(text, 2, rule)


def test_face_index_defaults_to_the_first_face_per_person():
    assert PACK.faces.parse_face_indices("", 3, "left_to_right") == [0, 0, 0]
    assert PACK.faces.parse_face_indices(" 2 ,1", 3, "index") == [2, 1, 0]
    assert PACK.faces.parse_face_indices("0", 2, "largest") == [0, 0]


def test_fingerprint_follows_file_contents_not_names(tmp_path):
    fingerprint = PACK.faces.photos_fingerprint
    (tmp_path / "a.jpg").write_bytes(b"first photo")
    (tmp_path / "b.jpg").write_bytes(b"other photo")
    before = fingerprint("a.jpg\nb.jpg", str(tmp_path))
    assert fingerprint("a.jpg\nb.jpg", str(tmp_path)) == before
    (tmp_path / "a.jpg").write_bytes(b"another person")  # replaced under the same name
    changed = fingerprint("a.jpg\nb.jpg", str(tmp_path))
    assert changed != before
    assert fingerprint("b.jpg\na.jpg", str(tmp_path)) != changed  # who is person 1 matters
    assert fingerprint("missing.jpg", str(tmp_path)) != fingerprint("", str(tmp_path))


def test_is_changed_reads_comfyui_input_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(PACK.host, "input_directory", lambda: str(tmp_path))
    (tmp_path / "a.jpg").write_bytes(b"first")
    node = PACK.faces.AnyPhotoLoadFaceRefs
    before = node.IS_CHANGED(photos="a.jpg", choice_rule="largest")
    (tmp_path / "a.jpg").write_bytes(b"second")
    assert node.IS_CHANGED(photos="a.jpg", choice_rule="largest") != before


class NoFaceInMarkedPhotos(PortraitAwareDetector):
    """The fixture detector, but a photo whose top-left pixel is pure red has no face."""

    def detect(self, image):
        return [] if tuple(image[0, 0]) == (255, 0, 0) else self.base.detect(image)


def test_skipped_photo_is_a_visible_warning(fixture_analyzer, group_photo):
    blank = group_photo.copy()
    blank[0, 0] = (255, 0, 0)
    analyzer = Analyzer(NoFaceInMarkedPhotos(fixture_analyzer.detector), fixture_analyzer.recognizer)
    out = PACK.faces.AnyPhotoLoadFaceRefs().load(
        analyzer, "largest", "", "skip", "", person_1=torch.cat([_image(group_photo), _image(blank)])
    )
    (refs, _), (message,) = out["result"], out["ui"][WARNINGS]
    assert len(refs[0].faces) == 1
    assert message.startswith("person 1: no face found in person 1 photo 2") and "skipped" in message


def _canvas(refs, width, height, boxes, **kw):
    placements = {"version": 1, "units": "fraction", "people": [{"box": b} for b in boxes]}
    node = PACK.canvas.AnyPhotoBuildLocationCanvas()
    return node.build(refs, width, height, json.dumps(placements), **kw)


def test_canvas_warns_about_extra_and_overlapping_boxes(fixture_analyzer, group_photo, tmp_path, monkeypatch):
    monkeypatch.setattr(PACK.host, "temp_directory", lambda: str(tmp_path))
    refs, _ = _load(
        fixture_analyzer, "left_to_right", "0, 1", person_1=_image(group_photo), person_2=_image(group_photo)
    )["result"]
    apart = [[0.1, 0.2, 0.4, 0.6], [0.55, 0.2, 0.85, 0.6]]
    assert _canvas(refs, 256, 256, apart)["ui"][WARNINGS] == []
    (extra,) = _canvas(refs, 256, 256, [*apart, [0.4, 0.7, 0.6, 0.9]])["ui"][WARNINGS]
    assert extra.startswith("3 boxes but 2 people: box(es) 3 have no person")
    (overlap,) = _canvas(refs, 256, 256, [apart[0], apart[0]])["ui"][WARNINGS]  # two people on one box
    assert overlap.startswith("boxes of person 1 and person 2 overlap by 100%")


def test_canvas_warns_about_layout_faces_lost_to_the_crop(fixture_analyzer, group_photo, tmp_path, monkeypatch):
    """The fixture scene (640x640, faces centred at y = 200, 300, 520) covers a 1024x256 output from
    y = -384: only the face at y = 300 stays inside."""
    monkeypatch.setattr(PACK.host, "temp_directory", lambda: str(tmp_path))
    refs, _ = _load(fixture_analyzer, "largest", "", person_1=_image(group_photo))["result"]
    out = _canvas(refs, 1024, 256, [], layout_image=_image(group_photo), face_analysis=fixture_analyzer)
    (message,) = out["ui"][WARNINGS]
    assert message.startswith("2 of 3 face(s) of the layout photo layout image")
