"""The pack in the REAL ComfyUI web frontend: a ComfyUI server (COMFYUI_PATH, CPU) with this repository
installed as the custom node ``comfyui-anyphoto``, driven in headless Chromium by tests/js/real_frontend.mjs.

Checks: the AnyPhoto node types are registered in the frontend, the 2-people workflow loads with no
missing-node dialog and no console error or page error from our extension, dragging on the location
editor adds a box to the ``placements`` JSON, the boxes survive a reload from ``app.graph.serialize()``,
face thumbnails delivered by the ``executed`` event are fetched from ``/view``, and node warnings
(``ui.anyphoto_warnings``) appear on the node and as a toast.

Needs ``COMFYUI_PATH`` (with comfyui-frontend-package installed), node, ``/usr/bin/chromium``
(or ``CHROMIUM_PATH``) and ``npm ci`` in tests/js. Regenerate the README screenshots with
``node tests/js/real_frontend.mjs URL workflows/anyphoto_2_people.json --screenshots docs/images``.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from integration import comfy_harness

REPO = Path(__file__).resolve().parents[2]
JS_DIR = REPO / "tests" / "js"
SCRIPT = JS_DIR / "real_frontend.mjs"
WORKFLOW = REPO / "workflows" / "anyphoto_2_people.json"
CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
PACK_NAME = "comfyui-anyphoto"
BOX_TOL = 0.01  # a drag lands within a few screen pixels of its target


def _skip_reason():
    if not os.environ.get("COMFYUI_PATH"):
        return comfy_harness.SETUP_HINT
    if shutil.which("node") is None:
        return "node (Node.js >= 20) is not installed"
    if not CHROMIUM.is_file():
        return f"{CHROMIUM} is missing: apt-get install -y chromium (or set CHROMIUM_PATH)"
    if not (JS_DIR / "node_modules" / "playwright-core").is_dir():
        return "playwright-core is missing: run `npm ci` in tests/js"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")


def _mentions_anyphoto(text):
    return "anyphoto" in text.lower()


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    base = tmp_path_factory.mktemp("comfy_frontend")
    (base / "custom_nodes").mkdir()
    # The pack under its install name (the harness would link it as the repository folder's name).
    (base / "custom_nodes" / PACK_NAME).symlink_to(REPO, target_is_directory=True)
    env = {**os.environ, "CHROMIUM_PATH": str(CHROMIUM)}
    with comfy_harness.start_server(base, ready_timeout=300) as server:
        proc = subprocess.run(
            ["node", str(SCRIPT), server.url, str(WORKFLOW)],
            cwd=JS_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        object_info = server.get_json("/object_info", timeout=120)  # slow on a busy machine
        log = server.log_tail()
    lines = proc.stdout.strip().splitlines()
    assert proc.returncode == 0 and lines, (
        f"real_frontend.mjs failed (rc {proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}\n"
        f"server log:\n{log}"
    )
    result = json.loads(lines[-1])
    result["object_info"] = sorted(k for k in object_info if k.startswith("AnyPhoto"))
    return result


def test_anyphoto_node_types_are_registered_in_the_frontend(report):
    assert "AnyPhotoBuildLocationCanvas" in report["object_info"], report["object_info"]
    assert sorted(report["registered"]) == report["object_info"]
    assert sorted(report["extensions"]) == ["anyphoto.locationEditor", "anyphoto.warnings"]


def test_workflow_loads_without_missing_nodes_or_errors_from_the_pack(report):
    missing = [n for n in report["graphNodes"] if not n["registered"]]
    assert not missing, f"node types unknown to the frontend: {missing}"
    assert not [d for d in report["dialogs"] if "missing" in d.lower()], report["dialogs"]
    ours = [
        m
        for m in report["console"]
        if m["phase"] != "faces"
        and m["type"] in ("error", "warning")
        and (_mentions_anyphoto(m["text"]) or _mentions_anyphoto(m["url"]))
    ]
    assert not ours, ours
    page_errors = [e for e in report["pageErrors"] if _mentions_anyphoto(e["error"])]
    assert not page_errors, page_errors
    loaded = report["loaded"]
    assert loaded["count"] == 1
    assert loaded["widgets"] == ["width", "height", "placements", "batch_size", "location_editor"]
    assert loaded["editorError"] is None
    expected = [p["box"] for p in json.loads(_workflow_placements())["people"]]
    assert loaded["editorBoxes"] == expected


def _workflow_placements():
    nodes = json.loads(WORKFLOW.read_text())["nodes"]
    return next(n for n in nodes if n["type"] == "AnyPhotoBuildLocationCanvas")["widgets_values"][2]


def test_dragging_on_the_editor_adds_a_box_to_the_placements_json(report):
    assert report["editorRect"], "the location editor canvas was not found in the page"
    before = json.loads(_workflow_placements())["people"]
    after = json.loads(report["afterDraw"]["placements"])
    assert after["version"] == 1 and after["units"] == "fraction"
    assert [p["box"] for p in after["people"][: len(before)]] == [p["box"] for p in before]
    assert len(after["people"]) == len(before) + 1
    drawn = after["people"][-1]["box"]
    target = [*report["drag"]["from"], *report["drag"]["to"]]
    assert all(abs(a - b) <= BOX_TOL for a, b in zip(drawn, target, strict=True)), (drawn, target)
    # What the graph would save is the new text.
    assert report["graphChanged"][2] == report["afterDraw"]["placements"]


def test_boxes_persist_through_serialize_and_reload(report):
    assert report["afterReload"]["placements"] == report["afterDraw"]["placements"]
    assert report["afterReload"]["editorBoxes"] == report["afterDraw"]["editorBoxes"]
    assert len(report["afterReload"]["editorBoxes"]) == 3


def test_executed_event_delivers_face_thumbnails(report):
    assert report["faces"] == ["/api/view", "/api/view"]
    assert report["viewRequests"] == [
        f"/api/view?filename=f{i}.png&subfolder=anyphoto&type=temp&rand=N" for i in range(2)
    ]


def test_node_warnings_show_on_the_node_and_as_a_toast(report):
    """A node's ui output ``anyphoto_warnings`` (nodes/feedback.py) reaches the user, and is not saved."""
    warnings = report["warnings"]
    message = "person 1 and person 2 got the same face (test)"
    assert warnings["shown"] == {"text": f"\u26a0 {message}", "visible": True}
    assert any(message in t and "AnyPhoto" in t for t in warnings["toasts"]), warnings["toasts"]
    assert warnings["clearedVisible"] is False  # the next run without warnings clears the box
    assert message not in json.dumps(warnings["serialized"])
