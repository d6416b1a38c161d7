"""Curriculum, degradations, identity dropout, square crop, greedy matching, manifest round trip."""

import numpy as np
import pytest

from anyphoto_core.canvas import FacePatch
from anyphoto_core.geometry import arcface_template
from train.config import DataConfig
from train.dataset import SampleBuilder, replacement_probability, square_crop_box
from train.degradations import DEGRADATIONS, degrade, hflip, resolve_probabilities
from train.manifest import match_faces, read_manifest


def test_curriculum_piecewise_and_linear():
    ms = [100, 200]
    assert [replacement_probability(s, ms, 0.5) for s in (0, 99, 100, 150, 200, 10**6)] == [0, 0, 0.25, 0.25, 0.5, 0.5]
    lin = [replacement_probability(s, ms, 0.5, "linear") for s in (0, 50, 100, 150, 200, 999)]
    assert lin == pytest.approx([0, 0.125, 0.25, 0.375, 0.5, 0.5])


def _patch():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)
    return FacePatch.opaque(img, arcface_template(112))


@pytest.mark.parametrize("name", sorted(DEGRADATIONS))
def test_each_degradation_keeps_shape_range_dtype(name):
    p = _patch()
    out = DEGRADATIONS[name](p, np.random.default_rng(1))
    assert out.image.shape == p.image.shape and out.image.dtype == np.uint8
    assert out.alpha.shape == p.alpha.shape and out.alpha.dtype == np.uint8
    assert out.landmarks.shape == (5, 2)
    if name != "hflip":
        np.testing.assert_array_equal(out.landmarks, p.landmarks)


def test_hflip_mirrors_pixels_and_swaps_landmarks():
    """A marker pixel under each landmark must sit under the matching (left/right swapped) flipped landmark."""
    p = _patch()
    img = p.image.copy()
    lmk = np.round(p.landmarks)
    colors = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255]], np.uint8)
    for (x, y), c in zip(lmk.astype(int), colors, strict=True):
        img[y, x] = c
    p = FacePatch(img, p.alpha, lmk)
    f = hflip(p, np.random.default_rng(0))
    np.testing.assert_array_equal(f.image[:, 0], p.image[:, -1])
    np.testing.assert_array_equal(f.alpha, p.alpha[:, ::-1])
    names = ["left eye", "right eye", "nose", "left mouth", "right mouth"]
    for j, (x, y) in enumerate(f.landmarks.astype(int)):
        want = {"left eye": 1, "right eye": 0, "nose": 2, "left mouth": 4, "right mouth": 3}[names[j]]
        np.testing.assert_array_equal(f.image[y, x], colors[want])
    assert f.landmarks[0, 0] < f.landmarks[1, 0] and f.landmarks[3, 0] < f.landmarks[4, 0]  # left stays image-left
    again = hflip(f, np.random.default_rng(0))
    np.testing.assert_array_equal(again.image, p.image)
    np.testing.assert_allclose(again.landmarks, p.landmarks)


def test_degrade_zero_probabilities_is_identity_and_unknown_name_is_error():
    p = _patch()
    out = degrade(p, np.random.default_rng(0), resolve_probabilities({k: 0.0 for k in DEGRADATIONS}))
    np.testing.assert_array_equal(out.image, p.image)
    with pytest.raises(ValueError, match="unknown degradation"):
        resolve_probabilities({"aging": 0.1})


def test_square_crop_contains_all_boxes():
    boxes = np.array([[100, 50, 200, 170], [400, 300, 480, 390]], float)
    for seed in range(50):
        x0, y0, side = square_crop_box(boxes, 1280, 886, np.random.default_rng(seed))
        assert x0 <= 100 and y0 <= 50 and x0 + side >= 480 and y0 + side >= 390
        assert 0 <= x0 and 0 <= y0 and x0 + side <= 1280 + 1e-6 and y0 + side <= 886 + 1e-6


def test_identity_dropout_rate(tiny_manifest):
    cfg = DataConfig(resolution=64, crop_size=112, id_dropout=0.15, degradations={k: 0.0 for k in DEGRADATIONS})
    builder = SampleBuilder(read_manifest(tiny_manifest), cfg, seed=0)
    keeps = np.concatenate([builder.build(i, 0).keep for i in range(300)])
    rate = 1 - keeps.mean()
    assert abs(rate - 0.15) < 3 * np.sqrt(0.15 * 0.85 / len(keeps))
    s = builder.build(0, 0)
    assert s.image.shape == (64, 64, 3) and s.image.dtype == np.uint8
    np.testing.assert_array_equal(s.embeddings[~s.keep], 0)
    assert len(s.canvases) == len(s.identities) and s.canvases[0].image.shape == (64, 64, 3)


def test_replacement_follows_curriculum(tiny_manifest):
    cfg = DataConfig(
        resolution=64,
        crop_size=112,
        replace_milestones=[10],
        replace_max=0.5,
        degradations={k: 0.0 for k in DEGRADATIONS},
    )
    builder = SampleBuilder(read_manifest(tiny_manifest), cfg, seed=0)
    assert not any(builder.build(i, 0).replaced.any() for i in range(20))
    replaced = np.concatenate([builder.build(i, 10).replaced for i in range(80)])
    assert 0.35 < replaced.mean() < 0.65


def test_greedy_matching_prefers_best_pairs():
    e = np.eye(3, 512)
    boxes = [[0, 0, 10, 10], [20, 0, 30, 10]]
    cands = [("a", e[0], None), ("b", e[1], None)]
    dets = np.stack([e[1], 0.9 * e[0] + 0.1 * e[1]])
    dets = dets / np.linalg.norm(dets, axis=1, keepdims=True)
    m = match_faces(boxes, dets, cands)
    assert {i: n for i, (n, _) in m.items()} == {0: "b", 1: "a"}
    # identical embeddings: the hint boxes decide
    same = np.stack([e[0], e[0]])
    cands = [("a", e[0], [20, 0, 30, 10]), ("b", e[0], [0, 0, 10, 10])]
    m = match_faces(boxes, same, cands)
    assert {i: n for i, (n, _) in m.items()} == {0: "b", 1: "a"}
    assert match_faces(boxes, same, [("c", e[2], None)]) == {}  # below min_score


def test_manifest_round_trip_and_errors(tiny_manifest, tmp_path):
    m = read_manifest(tiny_manifest)
    assert set(m.galleries) == {"left", "middle", "right"} and len(m.galleries["middle"]) == 2
    assert abs(np.linalg.norm(m.identity_embedding("middle")) - 1) < 1e-5
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"kind": "image", "image": "x.jpg", "faces": [{"identity": "z", "box": [0,0,1,1], '
        '"landmarks": [[0,0],[1,0],[0,1],[1,1],[0.5,0.5]]}]}\n'
    )
    with pytest.raises(ValueError, match="no 'identity' line"):
        read_manifest(bad)
