"""MultiID-Bench metrics and placement accuracy against hand-computed values."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from anyphoto_core.evaluation import metrics

D = 512


def basis(i: int, scale: float = 1.0) -> np.ndarray:
    v = np.zeros(D)
    v[i] = scale
    return v


def unit_at(deg: float, scale: float = 1.0) -> np.ndarray:
    """A vector at ``deg`` degrees in the plane of basis 0 and 1."""
    v = np.zeros(D)
    v[0], v[1] = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return v * scale


def mix(**weights) -> np.ndarray:
    """Unit vector with given components on basis ``e<i>``; the rest goes to e500 (orthogonal to all used)."""
    v = np.zeros(D)
    for name, w in weights.items():
        v[int(name[1:])] = w
    v[500] = np.sqrt(max(0.0, 1.0 - np.sum(v**2)))
    return v


def test_cosine_identical_orthogonal_and_scale_invariant():
    a = np.random.default_rng(0).normal(size=D)
    assert metrics.cosine(a, a) == pytest.approx(1.0)
    assert metrics.cosine(a, 7.5 * a) == pytest.approx(1.0)
    assert metrics.cosine(a, -a) == pytest.approx(-1.0)
    assert metrics.cosine(basis(0), basis(1)) == pytest.approx(0.0)
    assert metrics.cosine(unit_at(0), unit_at(60, 3.0)) == pytest.approx(0.5)


def test_cosine_rejects_mismatched_sizes():
    with pytest.raises(ValueError, match="embedding sizes differ"):
        metrics.cosine_matrix(np.ones((2, 512)), np.ones((1, 128)))


def test_sim_gt_and_ref_identical_orthogonal_empty():
    faces = np.stack([basis(0), basis(1)])
    assert metrics.sim_gt(faces, faces[::-1] * 3) == pytest.approx(1.0)  # order does not matter
    assert metrics.sim_gt(faces, np.stack([basis(2), basis(3)])) == pytest.approx(0.0)
    assert metrics.sim_ref(faces, np.zeros((0, D))) is None
    assert metrics.sim_gt(np.zeros((0, D)), faces) is None
    assert metrics.sim_gt([], faces) is None


def test_match_faces_equals_brute_force_on_rectangular_matrices():
    rng = np.random.default_rng(1)
    for n_a, n_b in ((3, 2), (2, 4), (4, 4)):
        a, b = rng.normal(size=(n_a, 16)), rng.normal(size=(n_b, 16))
        sim = (a / np.linalg.norm(a, axis=1, keepdims=True)) @ (b / np.linalg.norm(b, axis=1, keepdims=True)).T
        k = min(n_a, n_b)
        best = max(
            sum(sim[i, j] for i, j in zip(rows, cols, strict=True))
            for rows in itertools.permutations(range(n_a), k)
            for cols in itertools.permutations(range(n_b), k)
        )
        pairs, sims = metrics.match_faces(a, b)
        assert pairs.shape == (k, 2)
        assert len(set(pairs[:, 0])) == k and len(set(pairs[:, 1])) == k
        assert sims.sum() == pytest.approx(best)
        assert np.allclose(sims, sim[pairs[:, 0], pairs[:, 1]])


def test_match_faces_more_and_fewer_generated_faces_than_identities():
    ids = np.stack([basis(0), basis(1)])
    gen = np.stack([mix(e5=0.9), mix(e1=0.8), mix(e0=0.7)])  # a stranger, then identity 1, then identity 0
    pairs, sims = metrics.match_faces(gen, ids)
    assert pairs.tolist() == [[1, 1], [2, 0]]
    assert sims.tolist() == pytest.approx([0.8, 0.7])
    assert metrics.sim_ref(gen, ids) == pytest.approx(0.75)
    pairs, sims = metrics.match_faces(ids, gen[1:2])  # one face for two identities
    assert pairs.tolist() == [[1, 0]]
    assert metrics.sim_ref(gen[1:2], ids) == pytest.approx(0.8)


def test_non_matched_mean_of_off_assignment_entries():
    a = np.stack([mix(e0=0.9, e1=0.2), mix(e1=0.8, e0=0.1)])
    b = np.stack([basis(0), basis(1)])
    assert metrics.non_matched(a, b) == pytest.approx((0.2 + 0.1) / 2)
    assert metrics.non_matched(a[:1], b[:1]) is None
    # rectangular: the unmatched column counts too
    assert metrics.non_matched(a[:1], b) == pytest.approx(0.2)


def test_copy_paste_score_known_angles():
    t, r = unit_at(0), unit_at(60)
    assert metrics.copy_paste_score(unit_at(20), t, r) == pytest.approx((20 - 40) / 60, abs=1e-4)
    assert metrics.copy_paste_score(unit_at(50, 9.0), 2 * t, 0.5 * r) == pytest.approx((50 - 10) / 60, abs=1e-4)
    # x / (||x|| + eps) makes the angle of a unit vector with itself ~sqrt(4 eps) = 0.002 rad, not 0
    floor = np.sqrt(4e-6) / np.radians(60)
    assert metrics.copy_paste_score(r, t, r) == pytest.approx(1.0 - floor, abs=1e-4)
    assert metrics.copy_paste_score(t, t, r) == pytest.approx(-1.0 + floor, abs=1e-4)
    # out of the t-r plane, equidistant from t and r
    g = unit_at(30) * np.cos(np.radians(45)) + basis(2, np.sin(np.radians(45)))
    assert metrics.copy_paste_score(g, t, r) == pytest.approx(0.0, abs=1e-9)


def test_copy_paste_score_reference_equals_gt_is_zero():
    t = unit_at(10)
    assert metrics.copy_paste_score(unit_at(70), t, t) == 0.0  # equal angles to t and r
    # theta(t, r) < eps only happens for huge norms (the eps floor above): the rule returns 0
    big = 1e8 * t
    assert metrics.copy_paste_score(unit_at(70), big, big * (1 + 1e-12)) == 0.0
    # a GT-reference angle just above the floor is scored, not zeroed
    assert metrics.copy_paste_score(unit_at(5), t, unit_at(11)) == pytest.approx((5 - 6) / 1, abs=0.01)


def test_copy_paste_scores_multi_person_matching_and_count_rule():
    gt = np.stack([unit_at(0), basis(2)])
    refs = np.stack([unit_at(60), mix(e2=np.cos(np.radians(40)), e3=np.sin(np.radians(40)))])
    gen = np.stack([mix(e2=np.cos(np.radians(30)), e3=np.sin(np.radians(30))), unit_at(15)])  # person 2, person 1
    scores = metrics.copy_paste_scores(gen, gt, refs)
    assert scores.tolist() == pytest.approx([(30 - 10) / 40, (15 - 45) / 60], abs=1e-4)
    assert metrics.copy_paste_scores(gen[:1], gt, refs) is None
    assert metrics.copy_paste_scores(gen, gt, refs[:1]) is None
    assert metrics.copy_paste_scores(np.zeros((0, D)), gt[:0], refs[:0]) is None


def test_robust_summary_removes_iqr_outliers():
    values = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 100]
    # Q1 = 3.5, Q3 = 8.5 (linear interpolation), IQR = 5 -> keep [-4, 16]: the 100 goes
    s = metrics.robust_summary(values)
    assert (s.mean, s.removed, s.count, s.fallback) == (5.5, 1, 11, False)
    assert s.std == pytest.approx(np.sqrt(8.25))  # population std of 1..10
    assert metrics.robust_mean(values + [None]) == 5.5
    assert metrics.robust_mean([]) is None
    assert metrics.robust_mean([None]) is None


def test_robust_summary_falls_back_to_median_when_most_values_would_go():
    # with k = 0 only values inside [Q1, Q3] = [2.5, 7.5] survive: none of [0, 10] -> median statistics
    s = metrics.robust_summary([0.0, 10.0], k=0.0)
    assert s.fallback
    assert (s.mean, s.median, s.std, s.min, s.max, s.removed) == (5.0, 5.0, 5.0, 0.5, 9.5, 0)


def test_box_iou_center_distance_and_in_box_rule():
    assert metrics.box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)
    assert metrics.box_iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert metrics.box_center_distance((3, 4, 13, 14), (0, 0, 10, 10)) == pytest.approx(5 / np.hypot(10, 10))
    assert metrics.is_in_box((40, 40, 50, 50), (0, 0, 100, 100))  # IoU 0.01, centre inside
    assert metrics.is_in_box((60, 0, 160, 100), (0, 0, 100, 100), iou_threshold=0.25)  # centre outside, IoU 0.25
    assert not metrics.is_in_box((60, 0, 160, 100), (0, 0, 100, 100))
    with pytest.raises(ValueError, match="empty"):
        metrics.box_iou((0, 0, 0, 10), (0, 0, 10, 10))


BOX_A, BOX_B = (0, 0, 100, 100), (200, 0, 300, 100)
REF_A, REF_B = basis(0), basis(1)


def place(face_boxes, face_embs, **kw):
    return metrics.placement_accuracy([BOX_A, BOX_B], [REF_A, REF_B], face_boxes, face_embs, **kw)


def test_placement_hit_and_miss():
    res = place([BOX_B, (10, 10, 110, 110)], [mix(e1=0.6), mix(e0=0.5)])
    a, b = res.identities
    assert (a.face, a.in_box, b.face, b.in_box) == (1, True, 0, True)
    assert a.iou == pytest.approx(8100 / 11900) and b.iou == pytest.approx(1.0)
    assert a.similarity == pytest.approx(0.5)
    assert res.n_in_box == 2 and res.in_box_rate == 1.0 and not res.duplicates and not res.strangers
    res = place([(400, 300, 500, 400), BOX_B], [mix(e0=0.5), mix(e1=0.6)])
    a = res.identities[0]
    assert (a.missing, a.in_box, a.iou, a.in_box_of) == (False, False, 0.0, None)
    assert a.center_distance == pytest.approx(np.hypot(400, 300) / np.hypot(100, 100))
    assert res.in_box_rate == 0.5 and res.mean_iou == pytest.approx(0.5)


def test_placement_missing_identity_counts_as_miss():
    res = place([BOX_A], [mix(e0=0.7)])  # B has no face at all
    b = res.identities[1]
    assert (b.missing, b.in_box, b.iou, b.center_distance) == (True, False, 0.0, None)
    assert b.similarity == pytest.approx(0.0)
    assert res.n_missing == 1 and res.mean_iou == pytest.approx(0.5)
    # a face in B's box that does not look like B (cosine 0.1 < 0.2) is no hit either
    res = place([BOX_A, BOX_B], [mix(e0=0.7), mix(e1=0.1)])
    assert res.identities[1].missing and res.strangers == (1,)
    assert not place([BOX_A, BOX_B], [mix(e0=0.7), mix(e1=0.1)], match_threshold=0.05).identities[1].missing
    res = place(np.zeros((0, 4)), np.zeros((0, D)))
    assert res.n_missing == 2 and res.identities[0].similarity is None


def test_placement_duplicate_identity():
    res = place([BOX_A, BOX_B], [mix(e0=0.6), mix(e0=0.5, e1=0.05)])  # A twice, B nowhere
    a, b = res.identities
    assert a.face == 0 and a.in_box and b.missing
    assert res.duplicates == ((1, 0),) and res.strangers == ()


def test_placement_swapped_identities():
    res = place([BOX_A, BOX_B], [mix(e1=0.6), mix(e0=0.6)])  # B's face in A's box and vice versa
    a, b = res.identities
    assert (a.face, b.face) == (1, 0)
    assert not a.in_box and not b.in_box
    assert (a.in_box_of, b.in_box_of) == (1, 0)
    assert a.iou == 0.0 and res.in_box_rate == 0.0


def test_placement_credits_as_many_identities_as_possible():
    # Plain Hungarian on cosine would give A face 0 (0.15) and B face 1 (0.1): both below 0.2.
    faces = [basis(0), basis(1)]
    refs = [mix(e0=0.15, e1=0.3), mix(e0=-0.5, e1=0.1, e4=0.5)]
    res = metrics.placement_accuracy([BOX_A, BOX_B], refs, [BOX_B, BOX_A], faces)
    assert res.identities[0].face == 1 and res.identities[0].in_box
    assert res.identities[1].missing and res.strangers == (0,)


def test_placement_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="one box per reference"):
        metrics.placement_accuracy([BOX_A], [REF_A, REF_B], [], np.zeros((0, D)))
    with pytest.raises(ValueError, match="boxes but"):
        metrics.placement_accuracy([BOX_A], [REF_A], [BOX_A, BOX_B], [REF_A])
