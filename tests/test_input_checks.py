"""Bad numbers and boxes are refused where they enter, with the culprit named (issue 12).

Torch-free: run on every supported Python by ``scripts/ci_python_versions.sh``.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from anyphoto_core.geometry import box_to_landmarks
from anyphoto_core.notices import format_notices
from anyphoto_core.placements import Placement, parse_placements, placement_notices
from anyphoto_core.validation import check_identity_embeddings, check_identity_weights, identity_window

pytestmark = pytest.mark.torchfree


def test_a_pixel_value_among_fraction_boxes_is_an_error_naming_the_box():
    boxes = [[0.1, 0.2, 0.4, 0.5], [0.6, 0.2, 1.3, 0.5]]  # the typo 1.3
    with pytest.raises(ValueError, match=r"boxes mix fractions and pixels: box 2 \[0\.6, 0\.2, 1\.3, 0\.5\] has a"):
        parse_placements(boxes, 1024, 1024)
    # without the typo both boxes are fractions of the output, not pixels in the top-left corner
    ok = parse_placements([[0.1, 0.2, 0.4, 0.5], [0.6, 0.2, 0.9, 0.5]], 1000, 1000)
    np.testing.assert_allclose(ok[1].landmarks, box_to_landmarks((600, 200, 900, 500)))


def test_all_pixel_lists_stay_pixels():
    (p,) = parse_placements([[0, 10, 300, 400]], 1024, 1024)  # x1 = 0 is a pixel value here too
    np.testing.assert_allclose(p.landmarks, box_to_landmarks((0, 10, 300, 400)))


@pytest.mark.parametrize(
    "people,units,msg",
    [
        ([{"box": [0.1, 0.1, 0.3, 0.3]}, {"box": [0.5, 0.5, 1.3, 0.9]}], "fraction", r"person 2 box .* outside 0\.\.1"),
        ([{"box": [1.2, 1.2, 1.5, 1.5]}], "fraction", r"person 1 box .* outside 0\.\.1"),
        (
            [{"box": [900, 100, 1100, 300]}],
            "px",
            r"person 1 box \[900\.0, 100\.0, 1100\.0, 300\.0\] \(pixels\) lies outside the 1024x768",
        ),
        ([{"box": [10, -5, 100, 100]}], "px", r"person 1 box .* lies outside"),
    ],
)
def test_boxes_outside_the_output_are_errors_naming_the_person(people, units, msg):
    with pytest.raises(ValueError, match=msg):
        parse_placements(json.dumps({"version": 1, "units": units, "people": people}), 1024, 768)


def test_extra_boxes_and_shared_boxes_are_returned_as_notices():
    a, b, c = (Placement.from_box(box) for box in [(100, 100, 300, 300), (110, 100, 310, 300), (600, 100, 800, 300)])
    notices = placement_notices([a, b, c], people=2)
    assert [n.kind for n in notices] == ["extra_boxes", "boxes_overlap"]
    assert "3 boxes but 2 people: box(es) 3 have no person and are ignored" in notices[0].message
    assert re.match(r"boxes of person 1 and person 2 overlap by 9\d%; close faces", notices[1].message)
    assert format_notices(notices)[1].startswith("WARNING: boxes of person 1 and person 2")
    # two people on one box: 100% overlap
    (same,) = placement_notices([a, a], people=2)
    assert "overlap by 100%" in same.message
    assert placement_notices([a, c], people=2) == []


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), "heavy"])
def test_non_finite_person_weights_name_the_person(bad):
    with pytest.raises(ValueError, match=r"person_weights: person 2's weight"):
        check_identity_weights([1.0, bad], 2)
    assert check_identity_weights(["0.5", 2], 2) == [0.5, 2.0]
    with pytest.raises(ValueError, match="3 weights given for 2 people"):
        check_identity_weights([1, 1, 1], 2)


def _unit_rows(n, dim=512, seed=0):
    rows = np.random.default_rng(seed).normal(size=(n, dim))
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.mark.parametrize(
    "poison,msg",
    [
        (np.nan, r"person 2's identity embedding contains NaN or infinite values"),
        (np.inf, r"person 2's identity embedding contains NaN or infinite values"),
        (1e6, r"person 2's identity embedding has L2 norm 1e\+06; AnyPhoto expects L2-normalized"),
        (0.0, r"person 2's identity embedding has L2 norm 0; .* It is all zeros"),
    ],
)
def test_bad_embeddings_are_refused(poison, msg):
    emb = _unit_rows(3)
    if poison == 0.0:
        emb[1] = 0.0
    elif np.isfinite(poison):
        emb[1] *= poison
    else:
        emb[1, 7] = poison
    with pytest.raises(ValueError, match=msg):
        check_identity_embeddings(emb)


def test_good_embeddings_pass_unchanged():
    emb = _unit_rows(2)
    out = check_identity_embeddings(emb, dim=512)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, emb, rtol=1e-6)
    with pytest.raises(ValueError, match="the adapter expects 256"):
        check_identity_embeddings(emb, dim=256)


def test_identity_window():
    assert identity_window(0.0, 1.0) == []
    (off,) = identity_window(0.4, 0.4)
    assert off.kind == "identities_off" and "no sampling step uses the identities" in off.message
    with pytest.raises(ValueError, match="start_percent 0.6 is after end_percent 0.2"):
        identity_window(0.6, 0.2)
    with pytest.raises(ValueError, match="end_percent is nan"):
        identity_window(0.0, float("nan"))
