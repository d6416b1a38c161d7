"""Placements JSON: parsing, units, round trip, errors."""

import json

import numpy as np
import pytest

from anyphoto_core.geometry import box_to_landmarks
from anyphoto_core.placements import parse_placements, placements_to_json

pytestmark = pytest.mark.torchfree


def test_fraction_boxes_scale_to_output_pixels():
    text = json.dumps({"version": 1, "units": "fraction", "people": [{"box": [0.1, 0.2, 0.3, 0.5]}]})
    (p,) = parse_placements(text, 1000, 800)
    np.testing.assert_allclose(p.landmarks, box_to_landmarks((100, 160, 300, 400)))


def test_pixel_landmarks_and_bare_lists():
    lmk = box_to_landmarks((10, 10, 60, 70)).tolist()
    (p,) = parse_placements({"units": "px", "people": [{"landmarks": lmk}]}, 512, 512)
    np.testing.assert_allclose(p.landmarks, lmk)
    frac = parse_placements([[0.1, 0.1, 0.4, 0.5]], 200, 100)
    px = parse_placements([[20, 10, 80, 50]], 200, 100)
    np.testing.assert_allclose(frac[0].landmarks, px[0].landmarks)


def test_round_trip_through_json():
    placements = parse_placements([[0.1, 0.1, 0.3, 0.4], [0.5, 0.2, 0.7, 0.6]], 640, 480)
    again = parse_placements(placements_to_json(placements, 640, 480), 640, 480)
    for a, b in zip(placements, again, strict=True):
        np.testing.assert_allclose(a.landmarks, b.landmarks, atol=1e-2)


@pytest.mark.parametrize(
    "text,msg",
    [
        ("{not json", "not valid JSON"),
        ('{"people": [{"where": 1}]}', "person 1: needs a 'box'"),
        ('{"people": [{"box": [0.5, 0.5, 0.2, 0.9]}]}', "person 1 box"),
        ('{"version": 7, "people": []}', "version 7"),
        ('{"units": "inch", "people": []}', "units"),
        ('{"people": [{"landmarks": [[1, 2]]}]}', "person 1 landmarks"),
    ],
)
def test_errors_name_the_problem(text, msg):
    with pytest.raises(ValueError, match=msg):
        parse_placements(text, 512, 512)


def test_empty_text_means_no_people():
    assert parse_placements("  ", 512, 512) == []
