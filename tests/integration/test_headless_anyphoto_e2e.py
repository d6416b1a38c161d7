"""Headless end to end on a real ComfyUI server (fixture ``anyphoto_server``, see pack_server.py): the
shipped 2-people API workflow with test loaders. The client uploads the face photos, fills the workflow
(replacing its LoadImage placeholders) and gets an image back."""

import numpy as np
from fixtures.face_models import render_scene
from PIL import Image

from anyphoto_core.headless import ComfyClient, Job, run_workflow
from integration import pack_server

SIZE = 256  # BuildLocationCanvas's smallest size


def tiny_workflow() -> dict:
    """workflows/api/anyphoto_2_people.json with test loaders, plus AnyPhotoEvaluate -> PreviewImage."""
    wf = pack_server.tiny_workflow("anyphoto_2_people")
    by_type = pack_server.nodes_by_type(wf)
    (faces,) = by_type["AnyPhotoFaceAnalysisLoader"]
    (decode,), (refs,), (canvas,) = (
        by_type[c] for c in ("VAEDecode", "AnyPhotoLoadFaceRefs", "AnyPhotoBuildLocationCanvas")
    )
    wf["90"] = {
        "class_type": "AnyPhotoEvaluate",
        "inputs": {
            "images": [decode, 0],
            "face_refs": [refs, 0],
            "canvas": [canvas, 0],
            "face_analysis": [faces, 0],
            "match_threshold": 0.2,
            "iou_threshold": 0.3,
        },
    }
    wf["91"] = {"class_type": "PreviewImage", "inputs": {"images": ["90", 1]}}
    return wf


def test_headless_client_runs_anyphoto_workflow(anyphoto_server, tmp_path):
    photo = tmp_path / "scene.png"
    Image.fromarray(render_scene()).save(photo)
    people = [
        {"photos": [str(photo)], "box": [0.1, 0.2, 0.4, 0.5]},
        {"photos": [str(photo)], "box": [0.6, 0.2, 0.9, 0.5]},
    ]
    job = Job.from_dict({"people": people, "seed": 3, "steps": 2, "width": SIZE, "height": SIZE, "name": "e2e"})
    client = ComfyClient(anyphoto_server.url, timeout=60)
    try:
        saved = run_workflow(
            tiny_workflow(), job, tmp_path / "out", client=client, progress=False, timeout=90, include_temp=True
        )
    except Exception:
        print(anyphoto_server.log_tail())
        raise
    uploaded = sorted(p.name for p in (anyphoto_server.input_dir / "anyphoto").iterdir())
    assert uploaded == ["scene.png"]  # both people share one upload (same bytes)
    output, preview = sorted(saved, key=lambda p: "temp" in p.name)
    assert output.name.startswith("e2e_AnyPhoto_2p_")
    assert output.read_bytes() == (anyphoto_server.output_dir / output.name[len("e2e_") :]).read_bytes()
    for path in (output, preview):
        with Image.open(path) as png:
            assert png.size == (SIZE, SIZE)
            pixels = np.asarray(png.convert("RGB"))
        assert pixels.std() > 0  # a real picture, not a constant fill
    with Image.open(output) as png:
        generated = np.asarray(png.convert("RGB")).astype(int)
    # the annotated preview is the generated image with the two target boxes drawn on it
    assert (np.abs(pixels.astype(int) - generated).max(axis=2) > 0).any()


def test_server_lists_the_example_workflows_as_templates(anyphoto_server):
    templates = anyphoto_server.get_json("/workflow_templates")
    assert sorted(templates["anyphoto"]) == ["anyphoto_1_person", "anyphoto_2_people", "anyphoto_4_people"]
