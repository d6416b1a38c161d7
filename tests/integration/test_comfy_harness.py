"""The harness itself works against real ComfyUI: tiny FLUX in library mode, and a server running an API prompt."""

import json
import time
import urllib.request

import numpy as np
import pytest
import torch
from PIL import Image

from integration import comfy_harness


def test_tiny_flux_samples_in_library_mode(comfy):
    import comfy.model_patcher

    patcher = comfy_harness.build_tiny_flux(seed=1)
    assert isinstance(patcher, comfy.model_patcher.ModelPatcher)
    params = patcher.model.diffusion_model.params
    assert (params.hidden_size, params.num_heads, list(params.axes_dim)) == (128, 2, [8, 28, 28])
    assert (params.depth, params.depth_single_blocks, params.context_in_dim, params.vec_in_dim) == (2, 2, 64, 32)

    pos = comfy_harness.random_conditioning(patcher, seed=2)
    neg = comfy_harness.random_conditioning(patcher, seed=3)
    latent = comfy_harness.empty_latent(128, 96)
    out = comfy_harness.sample(patcher, pos, neg, latent, steps=3, cfg=1.0, seed=7)
    assert out.shape == (1, 16, 12, 16)
    assert torch.isfinite(out).all()
    assert out.std() > 0.1  # a denoised sample, not the zero latent

    again = comfy_harness.sample(patcher, pos, neg, latent, steps=3, cfg=1.0, seed=7)
    torch.testing.assert_close(again, out, rtol=0, atol=0)
    other_seed = comfy_harness.sample(patcher, pos, neg, latent, steps=3, cfg=1.0, seed=8)
    other_prompt = comfy_harness.sample(patcher, neg, pos, latent, steps=3, cfg=1.0, seed=7)
    assert (other_seed - out).abs().max() > 1e-3
    assert (other_prompt - out).abs().max() > 1e-6  # the conditioning reaches the model


def test_server_runs_api_prompt_end_to_end(comfy_server):
    info = comfy_server.get_json("/object_info/AnyPhotoTestTinyFluxLoader")
    assert info["AnyPhotoTestTinyFluxLoader"]["output"] == ["MODEL"]

    body = json.dumps({"prompt": comfy_harness.tiny_api_workflow(), "client_id": "harness-test"}).encode()
    req = urllib.request.Request(comfy_server.url + "/prompt", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        queued = json.loads(resp.read())
    assert queued["node_errors"] == {}

    deadline = time.monotonic() + 60
    entry = None
    while time.monotonic() < deadline:
        entry = comfy_server.get_json(f"/history/{queued['prompt_id']}").get(queued["prompt_id"])
        if entry and entry["status"].get("completed") is not None and entry["status"]["status_str"] != "":
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"prompt did not finish in 60 s:\n{comfy_server.log_tail()}")
    assert entry["status"]["status_str"] == "success", entry["status"]
    (image,) = entry["outputs"]["7"]["images"]
    assert image["type"] == "output"
    with Image.open(comfy_server.output_dir / image["subfolder"] / image["filename"]) as png:
        assert png.size == (128, 96)
        colours = np.unique(np.asarray(png.convert("RGB")).reshape(-1, 3), axis=0)
    assert len(colours) > 10  # a sampled latent, not a flat image
