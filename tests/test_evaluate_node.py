"""AnyPhotoEvaluate without ComfyUI: the fixture face models "detect" the three scene faces A, B, C in any
image, so the expected credits, IoUs and drawings follow from the scene geometry."""

import json

import numpy as np
import pytest
import torch
from fixtures.face_models import SCENE_FACES, render_scene
from integration.anyphoto_pack import load_pack

from anyphoto_core.evaluation.figures import identity_color
from anyphoto_core.placements import Placement

PACK = load_pack()
A, B, C = SCENE_FACES


def _iou(a, b):
    """Box IoU written out here, independent of anyphoto_core.evaluation.metrics."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])  # noqa: E731
    return w * h / (area(a) + area(b) - w * h)


@pytest.fixture(scope="module")
def scene():
    return torch.from_numpy(render_scene().astype(np.float32) / 255.0)[None]


@pytest.fixture(scope="module")
def refs_a_c(fixture_analyzer, scene):
    """Person 1 = face A, person 2 = face C (left_to_right indices 0 and 2)."""
    load = PACK.faces.AnyPhotoLoadFaceRefs().load
    (a,), _ = load(fixture_analyzer, "left_to_right", "0", "error", "", person_1=scene)["result"]
    (c,), _ = load(fixture_analyzer, "left_to_right", "2", "error", "", person_1=scene)["result"]
    return [a, c]


def _canvas(boxes_640, size=(320, 320)):
    """A CanvasSet at ``size`` whose placements are ``boxes_640`` (scene pixels) scaled to that size."""
    s = size[0] / 640
    placements = tuple(Placement.from_box(tuple(np.asarray(b) * s)) for b in boxes_640)
    return PACK.types.CanvasSet((), placements, size)


def test_scores_per_identity_and_annotation(fixture_analyzer, refs_a_c, scene):
    canvas = _canvas([A.box, B.box])  # person 1 (A) in its own box; person 2 (C) asked where B is
    node = PACK.evaluate.AnyPhotoEvaluate()
    text, drawn = node.evaluate(torch.cat([scene, scene]), refs_a_c, canvas, fixture_analyzer, 0.2, 0.3)
    scores = json.loads(text)
    assert [s["image"] for s in scores] == [0, 1] and scores[0] == {**scores[1], "image": 0}
    s = scores[0]
    faces = [np.array(f["box"]) for f in s["faces"]]
    index = {
        name: min(range(3), key=lambda j, f=face: np.abs(faces[j] - f.box).max())
        for name, face in zip("ABC", SCENE_FACES, strict=True)
    }
    for name, face in zip("ABC", SCENE_FACES, strict=True):
        np.testing.assert_allclose(faces[index[name]], face.box, atol=0.5)
    targets = [p.box for p in canvas.placements]
    np.testing.assert_allclose(s["target_boxes"], np.array(targets) * 2, atol=0.02)  # canvas 320 -> image 640

    one, two = s["identities"]
    assert one["identity"] == 1 and one["face"] == index["A"] and one["similarity"] > 0.999
    assert one["in_box"] and one["iou"] == pytest.approx(_iou(faces[index["A"]], s["target_boxes"][0]), abs=1e-3)
    assert two["identity"] == 2 and two["face"] == index["C"] and two["similarity"] > 0.999
    assert not two["in_box"] and two["iou"] == 0.0 and not two["missing"]
    assert s["duplicates"] == [{"face": index["B"], "identity": s["duplicates"][0]["identity"]}]
    assert (s["n_missing"], s["n_duplicates"], s["n_strangers"], s["n_in_box"]) == (0, 1, 0, 1)
    assert s["in_box_rate"] == 0.5

    assert tuple(drawn.shape) == (2, 640, 640, 3)
    img = (drawn[0].numpy() * 255).round().astype(np.int64)
    src = (scene[0].numpy() * 255).round().astype(np.int64)
    for face, k in ((A, 0), (C, 1)):  # credited faces outlined in their person's colour (left edge, mid height)
        x1, y1, _, y2 = face.box
        assert tuple(img[int((y1 + y2) / 2), int(round(x1))]) == identity_color(k)
    assert np.array_equal(img[:40, 600:], src[:40, 600:])  # far from every box: untouched


def test_missing_person_and_mismatched_inputs(fixture_analyzer, refs_a_c, scene):
    node = PACK.evaluate.AnyPhotoEvaluate()
    text, _ = node.evaluate(scene, refs_a_c, _canvas([A.box, C.box]), fixture_analyzer, 1.01, 0.3)
    (s,) = json.loads(text)  # nothing reaches a match threshold above 1: both missing, all faces strangers
    assert [q["missing"] for q in s["identities"]] == [True, True] and s["n_strangers"] == 3
    assert all(q["iou"] == 0.0 and q["similarity"] > 0.999 for q in s["identities"])
    with pytest.raises(ValueError, match="2 people in face_refs but 1 boxes"):
        node.evaluate(scene, refs_a_c, _canvas([A.box]), fixture_analyzer, 0.2, 0.3)
