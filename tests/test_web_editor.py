"""The location editor widget (web/): its JavaScript test suites, and the placements JSON contract
between the widget (web/anyphoto_placements.js) and anyphoto_core.placements.

Needs Node.js; tests/js/run.sh installs playwright-core (npm ci) and Debian's chromium when missing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from anyphoto_core.geometry import box_to_landmarks
from anyphoto_core.placements import Placement, parse_placements, placements_to_json

ROOT = Path(__file__).resolve().parents[1]
JS_TESTS = ROOT / "tests" / "js"
PLACEMENTS_JS = (ROOT / "web" / "anyphoto_placements.js").as_uri()

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node (Node.js >= 20) is not installed")


def run_js(call: str, stdin: str) -> str:
    """Evaluate ``call`` (an expression of ``input``, the text of ``stdin``) with the widget's
    placements module imported; returns the JSON-serialized result (a string result as is)."""
    source = (
        f"import * as P from {json.dumps(PLACEMENTS_JS)};"
        "let input = ''; for await (const c of process.stdin) input += c;"
        f"const r = {call}; process.stdout.write(typeof r === 'string' ? r : JSON.stringify(r));"
    )
    proc = subprocess.run(
        ["node", "--input-type=module", "-e", source], input=stdin, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def js_parse(text: str, width: int, height: int) -> dict:
    return json.loads(run_js(f"P.parsePlacements(input, {width}, {height})", text))


def test_js_suites_pass():
    proc = subprocess.run(["bash", str(JS_TESTS / "run.sh")], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"tests/js/run.sh failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
    assert "# fail 0" in proc.stdout


def test_widget_json_reads_in_python_as_the_same_boxes():
    width, height = 1280, 720
    doc = {
        "people": [{"box": [0.1, 0.2, 0.3, 0.6]}, {"box": [0.55, 0.123457, 0.8, 0.5], "name": "Bo"}],
        "extra": {"note": "kept"},
    }
    text = run_js("P.serializePlacements(JSON.parse(input))", json.dumps(doc))
    placements = parse_placements(text, width, height)
    assert len(placements) == 2
    for placement, person in zip(placements, doc["people"], strict=True):
        x1, y1, x2, y2 = person["box"]
        expected = box_to_landmarks((x1 * width, y1 * height, x2 * width, y2 * height))
        np.testing.assert_allclose(placement.landmarks, expected, atol=1e-9)


def test_python_json_reads_in_the_widget_as_the_same_fractions():
    width, height = 768, 1024
    px_boxes = [(100.0, 150.0, 300.0, 420.0), (400.0, 500.0, 700.0, 900.0)]
    text = placements_to_json([Placement.from_box(b) for b in px_boxes], width, height)
    parsed = js_parse(text, width, height)
    assert parsed["extra"] == {}
    assert [p["box"] for p in parsed["people"]] == [p["box"] for p in json.loads(text)["people"]]


def test_bare_pixel_lists_read_alike_in_python_and_the_widget():
    width, height = 1000, 800
    text = "[[100, 200, 300, 400], [500, 100, 900, 700]]"
    parsed = js_parse(text, width, height)
    for placement, person in zip(parse_placements(text, width, height), parsed["people"], strict=True):
        x1, y1, x2, y2 = person["box"]
        expected = box_to_landmarks((x1 * width, y1 * height, x2 * width, y2 * height))
        np.testing.assert_allclose(placement.landmarks, expected, atol=1e-9)
