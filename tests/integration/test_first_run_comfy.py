"""A newcomer's first run on a real ComfyUI server (fixture ``anyphoto_server``): the shipped workflow with
its photos given through LoadImage nodes, the size set in one place, warnings in the UI output, a photo
replaced under the same name re-read, and the template browser's thumbnails served."""

import io
import json
import urllib.parse
import urllib.request

import numpy as np
import pytest
from fixtures.face_models import render_scene
from PIL import Image

from anyphoto_core.headless import ComfyClient
from integration import pack_server
from integration.anyphoto_pack import PACK_ROOT

SIZE = (256, 320)  # width, height: BuildLocationCanvas's only size widgets
UI_KEY = "anyphoto_warnings"


def _run(server, workflow: dict) -> dict:
    """Queue ``workflow``, wait for it, return the prompt's history entry."""
    client = ComfyClient(server.url, timeout=60)
    ws = client.connect()
    try:
        prompt_id = client.queue_prompt(workflow)
        client.wait(ws, prompt_id, timeout=300, progress=False)
    except Exception:
        print(server.log_tail())
        raise
    finally:
        ws.close()
    return client.history(prompt_id)


def _get(server, route: str, **params) -> tuple[bytes, str]:
    """Body and Content-Type of ``GET route?params``."""
    url = server.url + route + ("?" + urllib.parse.urlencode(params) if params else "")
    with urllib.request.urlopen(url, timeout=30) as resp:
        return resp.read(), resp.headers["Content-Type"]


def _image(server, entry: dict, node_id: str) -> np.ndarray:
    (info,) = entry["outputs"][node_id]["images"]
    body, _ = _get(server, "/view", **{k: info[k] for k in ("filename", "subfolder", "type")})
    return np.asarray(Image.open(io.BytesIO(body)).convert("RGB"))


def _put_photo(server, name: str, pixels: np.ndarray) -> str:
    path = server.input_dir / "first_run" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return f"first_run/{name}"


def test_shipped_workflow_runs_on_load_image_photos(anyphoto_server):
    """Both LoadImage nodes get the same group photo: the image is made at the canvas size (no second size
    anywhere), and the UI outputs say that both people got the same face and that a box has no person."""
    photo = _put_photo(anyphoto_server, "group.png", render_scene())
    wf = pack_server.tiny_workflow("anyphoto_2_people")
    by_type = pack_server.nodes_by_type(wf)
    for node_id in by_type["LoadImage"]:
        wf[node_id]["inputs"]["image"] = photo
    (canvas,), (refs,), (save,) = (
        by_type[c] for c in ("AnyPhotoBuildLocationCanvas", "AnyPhotoLoadFaceRefs", "SaveImage")
    )
    boxes = [[0.1, 0.2, 0.4, 0.5], [0.6, 0.2, 0.9, 0.5], [0.4, 0.6, 0.6, 0.9]]  # one box too many
    placements = {"version": 1, "units": "fraction", "people": [{"box": b} for b in boxes]}
    wf[canvas]["inputs"].update(width=SIZE[0], height=SIZE[1], placements=json.dumps(placements))
    wf[next(i for i, n in wf.items() if n["class_type"] == "AnyPhotoIdentityIsolatedSampler")]["inputs"]["steps"] = 1
    entry = _run(anyphoto_server, wf)
    assert _image(anyphoto_server, entry, save).shape == (SIZE[1], SIZE[0], 3)
    (warning,) = entry["outputs"][refs][UI_KEY]
    assert warning.startswith("person 1 and person 2 got the same face")
    (warning,) = entry["outputs"][canvas][UI_KEY]
    assert warning.startswith("3 boxes but 2 people")


def test_photo_replaced_under_the_same_name_is_read_again(anyphoto_server):
    scene = render_scene()
    name = _put_photo(anyphoto_server, "person_1.png", scene)
    wf = {
        "1": {"class_type": "AnyPhotoFaceAnalysisLoader", "inputs": {"model_pack": "antelopev2", "provider": "CPU"}},
        "2": {
            "class_type": "AnyPhotoLoadFaceRefs",
            "inputs": {
                "face_analysis": ["1", 0],
                "choice_rule": "largest",
                "face_index": "",
                "on_no_face": "error",
                "photos": name,
            },
        },
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 1]}},
    }
    entry = _run(anyphoto_server, wf)
    first = _image(anyphoto_server, entry, "3")
    _put_photo(anyphoto_server, "person_1.png", 255 - scene)  # another picture, same file name
    entry = _run(anyphoto_server, wf)
    second = _image(anyphoto_server, entry, "3")
    assert np.abs(second.astype(int) - first.astype(int)).mean() > 20  # the aligned faces of the new photo


@pytest.mark.parametrize("stem", ["anyphoto_1_person", "anyphoto_2_people", "anyphoto_4_people"])
def test_template_thumbnails_are_served_where_the_frontend_looks(anyphoto_server, stem):
    """Frontend 1.27 shows custom-node templates with ``/api/workflow_templates/<pack>/<name>.jpg``."""
    body, kind = _get(anyphoto_server, f"/api/workflow_templates/anyphoto/{stem}.jpg")
    assert kind == "image/jpeg" and body == (PACK_ROOT / "workflows" / f"{stem}.jpg").read_bytes()
