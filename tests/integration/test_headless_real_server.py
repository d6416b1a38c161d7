"""The headless client against a real ComfyUI server (tiny FLUX test pack + core nodes only)."""

import numpy as np
import pytest
from PIL import Image

from anyphoto_core.headless import ComfyClient, ExecutionFailed, Job, PromptRejected, run_workflow
from integration import comfy_harness


def test_client_runs_a_filled_workflow_on_the_real_server(comfy_server, tmp_path):
    photo = tmp_path / "face.png"
    Image.fromarray(np.arange(48 * 32 * 3, dtype=np.uint8).reshape(32, 48, 3)).save(photo)
    client = ComfyClient(comfy_server.url)
    name = client.upload_image(photo)
    assert (comfy_server.input_dir / name).read_bytes() == photo.read_bytes()

    job = Job(seed=11, steps=2, width=160, height=64, name="real")  # differs from the workflow's 128x96
    saved = run_workflow(comfy_harness.tiny_api_workflow(), job, tmp_path / "out", client=client, progress=False)
    (path,) = saved
    assert path.name.startswith("real_harness_")
    assert path.read_bytes() == (comfy_server.output_dir / path.name[len("real_") :]).read_bytes()
    with Image.open(path) as png:
        assert png.size == (160, 64)


def test_real_server_rejections_and_execution_errors(comfy_server, tmp_path):
    client = ComfyClient(comfy_server.url)
    bad = comfy_harness.tiny_api_workflow()
    bad["5"]["inputs"]["sampler_name"] = "no_such_sampler"
    with pytest.raises(PromptRejected, match=r"HTTP 400\).*\n.*node 5 \(KSampler\).*no_such_sampler"):
        client.run(bad, tmp_path, progress=False)

    partly = comfy_harness.tiny_api_workflow()  # a valid branch plus an invalid one: HTTP 200 + node_errors
    partly["8"] = {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "ok"}}
    partly["9"] = {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 0}}
    partly["10"] = {"class_type": "SaveLatent", "inputs": {"samples": ["9", 0], "filename_prefix": "bad"}}
    with pytest.raises(PromptRejected, match=r"errors in the workflow:\nnode 9 \(EmptyLatentImage\)"):
        client.run(partly, tmp_path, progress=False)

    failing = comfy_harness.tiny_api_workflow()
    failing["1"]["inputs"]["num_heads"] = 3  # 128 is not divisible by 3: the loader raises at run time
    with pytest.raises(ExecutionFailed, match=r"node 1 \(AnyPhotoTestTinyFluxLoader\) failed: .*not divisible"):
        client.run(failing, tmp_path, progress=False)
