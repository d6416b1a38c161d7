"""A real ComfyUI server with the AnyPhoto pack, the tiny FLUX test pack, the fixture face models in
models/insightface and a tiny adapter in models/anyphoto; and the shipped API workflows with the FLUX /
text / VAE loaders swapped for the test pack's."""

from __future__ import annotations

import contextlib
import json

from anyphoto_core.flux import FluxParams
from integration import comfy_harness
from integration.anyphoto_pack import PACK_ROOT
from tests.tiny import tiny_adapter

TINY = {"seed": 1, "hidden_size": 128, "num_heads": 2, "depth": 2, "depth_single_blocks": 2}
ADAPTER_NAME = "tiny_adapter.safetensors"


@contextlib.contextmanager
def start_anyphoto_server(base):
    """Yield a :class:`comfy_harness.ComfyServer` on ``base`` with the pack installed as ``anyphoto``."""
    from fixtures.face_models import build_face_pack

    build_face_pack(base / "models" / "insightface")  # -> models/insightface/models/antelopev2/*.onnx
    (base / "models" / "anyphoto").mkdir(parents=True)
    params = FluxParams(
        hidden_size=TINY["hidden_size"],
        num_heads=TINY["num_heads"],
        depth=TINY["depth"],
        depth_single_blocks=TINY["depth_single_blocks"],
    )
    tiny_adapter(params).float().save(base / "models" / "anyphoto" / ADAPTER_NAME)
    (base / "custom_nodes").mkdir()
    (base / "custom_nodes" / "anyphoto").symlink_to(PACK_ROOT, target_is_directory=True)
    with comfy_harness.start_server(base, [comfy_harness.TINY_FLUX_PACK], ready_timeout=300) as server:
        yield server


def nodes_by_type(workflow: dict) -> dict[str, list[str]]:
    """``{class_type: [node ids]}`` of an API workflow."""
    out = {}
    for node_id, node in workflow.items():
        out.setdefault(node["class_type"], []).append(node_id)
    return out


def tiny_workflow(stem: str = "anyphoto_2_people") -> dict:
    """``workflows/api/<stem>.json`` with the test pack's tiny FLUX, tiny VAE and random conditioning
    instead of the FLUX.1-dev loaders and text encoders; the tiny adapter; face analysis on the CPU."""
    wf = json.loads((PACK_ROOT / "workflows" / "api" / f"{stem}.json").read_text())
    by_type = nodes_by_type(wf)
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
    wf[adapter]["inputs"]["adapter_name"] = ADAPTER_NAME
    wf[faces]["inputs"]["provider"] = "CPU"
    return wf
