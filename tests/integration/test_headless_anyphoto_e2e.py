"""Headless end to end on a real ComfyUI server: the shipped 2-people API workflow, with the FLUX / text /
VAE loaders swapped for the tiny test pack's, the fixture face models in models/insightface and a tiny
adapter in models/anyphoto. The client uploads the face photos, fills the workflow and gets an image back."""

import json

import numpy as np
import pytest
from fixtures.face_models import build_face_pack, render_scene
from PIL import Image

from anyphoto_core.flux import FluxParams
from anyphoto_core.headless import ComfyClient, Job, run_workflow
from integration import comfy_harness
from integration.anyphoto_pack import PACK_ROOT
from tests.tiny import tiny_adapter

TINY = {"seed": 1, "hidden_size": 128, "num_heads": 2, "depth": 2, "depth_single_blocks": 2}
SIZE = 256  # BuildLocationCanvas's smallest size


@pytest.fixture(scope="module")
def anyphoto_server(tmp_path_factory):
    base = tmp_path_factory.mktemp("anyphoto_base")
    build_face_pack(base / "models" / "insightface")  # -> models/insightface/models/antelopev2/*.onnx
    (base / "models" / "anyphoto").mkdir(parents=True)
    params = FluxParams(
        hidden_size=TINY["hidden_size"],
        num_heads=TINY["num_heads"],
        depth=TINY["depth"],
        depth_single_blocks=TINY["depth_single_blocks"],
    )
    tiny_adapter(params).float().save(base / "models" / "anyphoto" / "tiny_adapter.safetensors")
    (base / "custom_nodes").mkdir()
    (base / "custom_nodes" / "anyphoto").symlink_to(PACK_ROOT, target_is_directory=True)
    with comfy_harness.start_server(base, [comfy_harness.TINY_FLUX_PACK]) as server:
        yield server


def tiny_workflow() -> dict:
    """workflows/api/anyphoto_2_people.json with test loaders, plus AnyPhotoEvaluate -> PreviewImage."""
    wf = json.loads((PACK_ROOT / "workflows" / "api" / "anyphoto_2_people.json").read_text())
    by_type = {}
    for node_id, node in wf.items():
        by_type.setdefault(node["class_type"], []).append(node_id)
    (unet,), (clip,), (vae,) = by_type.pop("UNETLoader"), by_type.pop("DualCLIPLoader"), by_type.pop("VAELoader")
    wf[unet] = {"class_type": "AnyPhotoTestTinyFluxLoader", "inputs": dict(TINY)}
    wf[vae] = {"class_type": "AnyPhotoTestTinyVAE", "inputs": {}}
    del wf[clip]
    for seed, node_id in enumerate(by_type.pop("CLIPTextEncode")):  # positive and negative
        wf[node_id] = {
            "class_type": "AnyPhotoTestRandomConditioning",
            "inputs": {"model": [unet, 0], "seed": seed, "tokens": 8},
        }
    (adapter,), (faces,) = by_type["AnyPhotoAdapterLoader"], by_type["AnyPhotoFaceAnalysisLoader"]
    wf[adapter]["inputs"]["adapter_name"] = "tiny_adapter.safetensors"
    wf[faces]["inputs"]["provider"] = "CPU"
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
