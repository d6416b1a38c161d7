"""The headless client against a local fake ComfyUI that speaks the server protocol (HTTP + websocket).

The fake (aiohttp, in a background thread) follows ComfyUI v0.3.64 server.py / execution.py: multipart
``/upload/image``, ``/prompt`` validation (HTTP 400 when no output is valid, HTTP 200 + ``node_errors``
when some are), websocket messages per ``client_id`` (status, execution_start, executing, progress,
binary preview frames, executed, execution_success / execution_error), ``/history`` written just *after*
execution_success, and ``/view``.
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
import threading
import uuid

import numpy as np
import pytest
from aiohttp import web
from PIL import Image

from anyphoto_core.headless import (
    ComfyClient,
    ExecutionFailed,
    Job,
    JobError,
    PromptRejected,
    fill_workflow,
    read_jobs_jsonl,
    run_workflow,
)
from anyphoto_core.headless.cli import main
from anyphoto_core.placements import Placement, parse_placements

KNOWN_NODES = {
    "UNETLoader",
    "DualCLIPLoader",
    "VAELoader",
    "CLIPTextEncode",
    "FluxGuidance",
    "AnyPhotoLoadFaceRefs",
    "AnyPhotoBuildLocationCanvas",
    "AnyPhotoIdentityIsolatedSampler",
    "VAEDecode",
    "SaveImage",
    "PreviewImage",
}
OUTPUT_NODES = {"SaveImage": "output", "PreviewImage": "temp"}


def png_bytes(color, size=(8, 8)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def ancestors(workflow, node_id):
    seen, stack = set(), [node_id]
    while stack:
        cur = stack.pop()
        if cur not in seen:
            seen.add(cur)
            stack += [v[0] for v in workflow[cur]["inputs"].values() if isinstance(v, list) and len(v) == 2]
    return seen


class FakeComfy:
    """A ComfyUI stand-in. ``fail_node`` makes that node raise during execution (-> execution_error)."""

    def __init__(self, steps=3):
        self.steps = steps
        self.fail_node = None
        self.uploads, self.prompts, self.history, self.files = {}, [], {}, {}
        self.sockets = {}
        self.loop = asyncio.new_event_loop()
        app = web.Application()
        app.add_routes(
            [
                web.post("/upload/image", self.upload),
                web.post("/prompt", self.prompt),
                web.get("/history/{prompt_id}", self.get_history),
                web.get("/view", self.view),
                web.get("/ws", self.ws),
            ]
        )
        self.runner = web.AppRunner(app)
        self.loop.run_until_complete(self.runner.setup())
        self.loop.run_until_complete(web.TCPSite(self.runner, "127.0.0.1", 0).start())
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def close(self):
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    async def upload(self, request):
        post = await request.post()
        image = post["image"]
        name = f"{post.get('subfolder', '')}/{image.filename}".lstrip("/")
        self.uploads[name] = image.file.read()
        return web.json_response({"name": image.filename, "subfolder": post.get("subfolder", ""), "type": "input"})

    async def prompt(self, request):
        body = await request.json()
        workflow = body["prompt"]
        self.prompts.append(body)
        for node_id, node in workflow.items():
            if node["class_type"] not in KNOWN_NODES:
                return web.json_response(
                    {
                        "error": {
                            "type": "invalid_prompt",
                            "message": f"Cannot execute because node {node['class_type']} does not exist.",
                            "details": f"Node ID '#{node_id}'",
                            "extra_info": {},
                        },
                        "node_errors": [],
                    },
                    status=400,
                )
        node_errors = {
            i: {
                "errors": [
                    {
                        "type": "required_input_missing",
                        "message": "Required input is missing",
                        "details": k,
                        "extra_info": {},
                    }
                ],
                "dependent_outputs": [],
                "class_type": n["class_type"],
            }
            for i, n in workflow.items()
            for k, v in n["inputs"].items()
            if v is None
        }
        outputs = [
            i
            for i, n in workflow.items()
            if n["class_type"] in OUTPUT_NODES and not ancestors(workflow, i) & set(node_errors)
        ]
        if not outputs:
            return web.json_response(
                {
                    "error": {
                        "type": "prompt_outputs_failed_validation",
                        "message": "Prompt outputs failed validation",
                        "details": "",
                        "extra_info": {},
                    },
                    "node_errors": node_errors,
                },
                status=400,
            )
        prompt_id = str(uuid.uuid4())
        asyncio.get_running_loop().create_task(self.execute(prompt_id, body["client_id"], workflow, outputs))
        return web.json_response({"prompt_id": prompt_id, "number": len(self.prompts), "node_errors": node_errors})

    async def send(self, client_id, kind, data):
        await self.sockets[client_id].send_str(json.dumps({"type": kind, "data": data}))

    async def execute(self, prompt_id, client_id, workflow, outputs):
        await self.send(client_id, "execution_start", {"prompt_id": prompt_id})
        await self.send(client_id, "execution_cached", {"nodes": [], "prompt_id": prompt_id})
        ran = set().union(*(ancestors(workflow, o) for o in outputs))
        for node_id in sorted(ran, key=int):
            await self.send(client_id, "executing", {"node": node_id, "display_node": node_id, "prompt_id": prompt_id})
            if node_id == self.fail_node:
                await self.send(
                    client_id,
                    "execution_error",
                    {
                        "prompt_id": prompt_id,
                        "node_id": node_id,
                        "node_type": workflow[node_id]["class_type"],
                        "executed": [],
                        "exception_message": "boom: out of identities",
                        "exception_type": "ValueError",
                        "traceback": ["..."],
                        "current_inputs": {},
                        "current_outputs": [],
                    },
                )
                self.history[prompt_id] = {
                    "outputs": {},
                    "status": {"status_str": "error", "completed": False, "messages": []},
                    "meta": {},
                }
                return
            if workflow[node_id]["class_type"] == "AnyPhotoIdentityIsolatedSampler":
                for step in range(1, self.steps + 1):
                    await self.send(
                        client_id,
                        "progress",
                        {"value": step, "max": self.steps, "prompt_id": prompt_id, "node": node_id},
                    )
                    await self.sockets[client_id].send_bytes(b"\x00\x00\x00\x01" + png_bytes("gray"))
        history_outputs = {}
        for node_id in outputs:
            kind = OUTPUT_NODES[workflow[node_id]["class_type"]]
            filename = f"ComfyUI_{len(self.files) + 1:05d}_.png"
            self.files[(filename, kind)] = png_bytes((len(self.files) * 40 % 256, 10, 200))
            output = {"images": [{"filename": filename, "subfolder": "", "type": kind}]}
            history_outputs[node_id] = output
            await self.send(
                client_id,
                "executed",
                {"node": node_id, "display_node": node_id, "output": output, "prompt_id": prompt_id},
            )
        await self.send(client_id, "execution_success", {"prompt_id": prompt_id})
        await self.send(client_id, "executing", {"node": None, "prompt_id": prompt_id})
        await asyncio.sleep(0.2)  # like ComfyUI: history is written after execution_success is sent
        self.history[prompt_id] = {
            "prompt": [0, prompt_id, workflow, {}, outputs],
            "outputs": history_outputs,
            "status": {"status_str": "success", "completed": True, "messages": []},
            "meta": {},
        }

    async def get_history(self, request):
        prompt_id = request.match_info["prompt_id"]
        return web.json_response({prompt_id: self.history[prompt_id]} if prompt_id in self.history else {})

    async def view(self, request):
        key = (request.query["filename"], request.query.get("type", "output"))
        if key not in self.files:
            return web.Response(status=404)
        return web.Response(body=self.files[key], content_type="image/png")

    async def ws(self, request):
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        client_id = request.query["clientId"]
        self.sockets[client_id] = sock
        await sock.send_str(
            json.dumps({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": client_id}})
        )
        async for _ in sock:
            pass
        return sock


@pytest.fixture
def fake():
    server = FakeComfy()
    yield server
    server.close()


def anyphoto_workflow():
    """An API workflow shaped like the AnyPhoto FLUX graph (positive text through FluxGuidance)."""
    return {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "flux1-dev.safetensors", "weight_dtype": "default"}},
        "2": {
            "class_type": "DualCLIPLoader",
            "inputs": {"clip_name1": "t5.safetensors", "clip_name2": "l.safetensors", "type": "flux"},
        },
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["2", 0], "text": "old prompt"}},
        "4": {"class_type": "FluxGuidance", "inputs": {"conditioning": ["3", 0], "guidance": 3.5}},
        "5": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["2", 0], "text": "blurry"}},
        "6": {"class_type": "AnyPhotoLoadFaceRefs", "inputs": {"photos": "[]"}},
        "7": {
            "class_type": "AnyPhotoBuildLocationCanvas",
            "inputs": {"face_refs": ["6", 0], "placements": "", "width": 1024, "height": 768},
        },
        "8": {
            "class_type": "AnyPhotoIdentityIsolatedSampler",
            "inputs": {
                "model": ["1", 0],
                "positive": ["4", 0],
                "negative": ["5", 0],
                "canvas": ["7", 0],
                "seed": 0,
                "steps": 20,
            },
        },
        "9": {"class_type": "VAELoader", "inputs": {"vae_name": "ae.safetensors"}},
        "10": {"class_type": "VAEDecode", "inputs": {"samples": ["8", 0], "vae": ["9", 0]}},
        "11": {"class_type": "SaveImage", "inputs": {"images": ["10", 0], "filename_prefix": "anyphoto"}},
        "12": {"class_type": "PreviewImage", "inputs": {"images": ["10", 0]}},
    }


@pytest.fixture
def photos(tmp_path):
    paths = []
    for name, color in (("alice.png", "red"), ("alice2.png", "orange"), ("bob.png", "blue")):
        paths.append(tmp_path / name)
        paths[-1].write_bytes(png_bytes(color))
    return paths


def two_people_job(photos, **extra):
    return Job.from_dict(
        {
            "prompt": "two friends hiking",
            "seed": 42,
            "steps": 3,
            "width": 512,
            "height": 384,
            "people": [
                {"photos": [p.name for p in photos[:2]], "box": [0.1, 0.2, 0.3, 0.5]},
                {"photos": [photos[2].name], "box": [0.6, 0.2, 0.8, 0.5]},
            ],
            **extra,
        },
        photos[0].parent,
    )


# --- filling rules ---------------------------------------------------------------------------------------


def test_fill_writes_job_values_into_the_right_nodes(photos):
    job = two_people_job(photos)
    names = [["anyphoto/alice.png", "anyphoto/alice2.png"], ["anyphoto/bob.png"]]
    wf = anyphoto_workflow()
    out = fill_workflow(wf, job, names)
    assert wf == anyphoto_workflow()  # the input is not modified
    assert out["3"]["inputs"]["text"] == "two friends hiking"  # the encoder behind FluxGuidance → positive
    assert out["5"]["inputs"]["text"] == "blurry"  # the negative is kept
    assert (out["8"]["inputs"]["seed"], out["8"]["inputs"]["steps"]) == (42, 3)
    assert (out["7"]["inputs"]["width"], out["7"]["inputs"]["height"]) == (512, 384)
    assert json.loads(out["6"]["inputs"]["photos"]) == names
    placements = parse_placements(out["7"]["inputs"]["placements"], 512, 384)
    expected = [Placement.from_box((51.2, 76.8, 153.6, 192.0)), Placement.from_box((307.2, 76.8, 409.6, 192.0))]
    np.testing.assert_allclose([p.landmarks for p in placements], [p.landmarks for p in expected], atol=1e-6)
    untouched = {k for k in wf if out[k] == wf[k]}
    assert untouched == {"1", "2", "4", "5", "9", "10", "11", "12"}


def test_fill_pixel_boxes_keep_their_units(photos):
    job = Job.from_dict(
        {"people": [{"photos": ["bob.png"], "box": [100, 200, 300, 500]}], "units": "px"}, photos[0].parent
    )
    out = fill_workflow(anyphoto_workflow(), job, [["bob.png"]])
    for width, height in ((1024, 768), (512, 512)):  # pixel boxes do not depend on the output size
        (placement,) = parse_placements(out["7"]["inputs"]["placements"], width, height)
        np.testing.assert_allclose(placement.landmarks, Placement.from_box((100, 200, 300, 500)).landmarks)


@pytest.mark.parametrize(
    "job, removed, message",
    [
        ({"prompt": "x"}, ["3", "5"], "has none of the text encoders"),
        (
            {"seed": 1},
            ["8"],
            r"sets 'seed', but .* no node to take it \(looked for AnyPhotoIdentityIsolatedSampler.seed",
        ),
        ({"width": 64}, ["7"], r"sets 'width', but .* no node .*EmptyLatentImage.width"),
    ],
)
def test_fill_errors_name_the_missing_node(job, removed, message):
    wf = {k: v for k, v in anyphoto_workflow().items() if k not in removed}
    with pytest.raises(JobError, match=message):
        fill_workflow(wf, Job.from_dict(job))


def test_fill_refuses_ambiguous_prompt_and_wired_inputs():
    wf = anyphoto_workflow()
    wf["8"]["inputs"]["positive"] = wf["8"]["inputs"]["negative"] = ["9", 0]  # no text encoder feeds "positive"
    with pytest.raises(JobError, match="has 2 but none feeds a 'positive' input"):
        fill_workflow(wf, Job(prompt="x"))
    wf = anyphoto_workflow()
    wf["8"]["inputs"]["seed"] = ["1", 0]
    with pytest.raises(JobError, match=r"node 8 \(AnyPhotoIdentityIsolatedSampler\) input 'seed' is wired"):
        fill_workflow(wf, Job(seed=3))


def test_ui_format_and_bad_jobs_are_rejected(tmp_path):
    with pytest.raises(JobError, match="UI-format workflow"):
        fill_workflow({"nodes": [], "links": []}, Job())
    with pytest.raises(JobError, match="unknown job field"):
        Job.from_dict({"sed": 3})
    with pytest.raises(JobError, match="person 1: photo .*nope.png does not exist"):
        Job.from_dict({"people": [{"photos": ["nope.png"], "box": [0, 0, 1, 1]}]}, tmp_path)
    bad = tmp_path / "jobs.jsonl"
    bad.write_text('{"seed": 1}\n\n{"seed": -4}\n')
    with pytest.raises(JobError, match=r"jobs.jsonl:3: \"seed\" must be a non-negative integer"):
        read_jobs_jsonl(bad)


# --- protocol -------------------------------------------------------------------------------------------


def test_success_path_uploads_queues_follows_and_downloads(fake, photos, tmp_path, capsys):
    saved = run_workflow(anyphoto_workflow(), two_people_job(photos, name="hike"), tmp_path / "out", server=fake.url)

    assert fake.uploads == {f"anyphoto/{p.name}": p.read_bytes() for p in photos}
    (body,) = fake.prompts
    sent = body["prompt"]
    assert body["client_id"] in fake.sockets  # the websocket was opened with the same client id
    assert json.loads(sent["6"]["inputs"]["photos"]) == [
        ["anyphoto/alice.png", "anyphoto/alice2.png"],
        ["anyphoto/bob.png"],
    ]
    assert sent["3"]["inputs"]["text"] == "two friends hiking" and sent["8"]["inputs"]["seed"] == 42

    (path,) = saved  # SaveImage only; the PreviewImage (temp) output is skipped by default
    assert path.parent == tmp_path / "out" and path.name.startswith("hike_ComfyUI_")
    assert path.read_bytes() == fake.files[(path.name[len("hike_") :], "output")]
    assert "3/3" in capsys.readouterr().err  # the tqdm bar followed the progress messages


def test_node_errors_with_http_200_are_a_failure(fake):
    wf = anyphoto_workflow()
    wf["12"] = {"class_type": "PreviewImage", "inputs": {"images": None}}  # one broken output, one valid
    with pytest.raises(PromptRejected, match=r"node 12 \(PreviewImage\): Required input is missing: images"):
        ComfyClient(fake.url).run(wf, "unused", progress=False)
    assert len(fake.prompts) == 1  # it was accepted with HTTP 200, and still reported


def test_http_400_reports_the_server_message(fake):
    wf = anyphoto_workflow()
    wf["6"]["class_type"] = "AnyPhotoLoadFaceRefz"
    with pytest.raises(PromptRejected, match=r"HTTP 400\): Cannot execute because node AnyPhotoLoadFaceRefz does not"):
        ComfyClient(fake.url).run(wf, "unused", progress=False)


def test_execution_error_over_the_websocket(fake, tmp_path):
    fake.fail_node = "8"
    with pytest.raises(ExecutionFailed, match=r"node 8 \(AnyPhotoIdentityIsolatedSampler\) failed: ValueError: boom"):
        ComfyClient(fake.url).run(anyphoto_workflow(), tmp_path, progress=False)
    assert not list(tmp_path.iterdir())


# --- CLI ------------------------------------------------------------------------------------------------


def write_workflow(tmp_path, wf=None, name="workflow_api.json"):
    path = tmp_path / name
    path.write_text(json.dumps(wf or anyphoto_workflow()))
    return path


def test_cli_single_job_and_exit_codes(fake, photos, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    wf = write_workflow(tmp_path)
    code = main(
        [
            str(wf),
            "--server",
            fake.url,
            "--out",
            "out",
            "--prompt",
            "a duo",
            "--seed",
            "7",
            "--person",
            "alice.png,alice2.png@0.1,0.2,0.3,0.5",
            "--person",
            "bob.png@0.6,0.2,0.8,0.5",
            "--no-progress",
            "--include-temp",
        ]
    )
    out = capsys.readouterr().out.split()
    assert code == 0 and len(out) == 2  # SaveImage + PreviewImage (temp, asked for)
    assert json.loads(fake.prompts[0]["prompt"]["6"]["inputs"]["photos"])[1] == ["anyphoto/bob.png"]

    fake.fail_node = "10"
    assert main([str(wf), "--server", fake.url, "--out", "out", "--no-progress"]) == 1
    assert "node 10 (VAEDecode) failed: ValueError: boom" in capsys.readouterr().err

    assert main([str(write_workflow(tmp_path, {"nodes": [], "links": []}, "ui.json")), "--server", fake.url]) == 2
    assert "UI-format workflow" in capsys.readouterr().err
    assert main([str(wf), "--server", fake.url, "--person", "bob.png"]) == 2
    assert "expected PHOTO[,PHOTO...]@X1,Y1,X2,Y2" in capsys.readouterr().err

    with socket.socket() as s:  # a port nothing listens on once the socket is closed
        s.bind(("127.0.0.1", 0))
        closed_url = f"http://127.0.0.1:{s.getsockname()[1]}"
    assert main([str(wf), "--server", closed_url, "--no-progress"]) == 3
    assert "cannot" in capsys.readouterr().err


def test_cli_batch_jsonl(fake, photos, tmp_path, capsys):
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(
        "\n".join(
            json.dumps(j)
            for j in [
                {"prompt": "first", "seed": 1, "people": [{"photos": ["alice.png"], "box": [0.1, 0.1, 0.4, 0.5]}]},
                {
                    "prompt": "second",
                    "seed": 2,
                    "name": "two",
                    "people": [{"photos": ["bob.png"], "box": [0.5, 0.1, 0.9, 0.5]}],
                },
            ]
        )
        + "\n"
    )
    code = main(
        [
            str(write_workflow(tmp_path)),
            "--server",
            fake.url,
            "--out",
            str(tmp_path / "out"),
            "--jobs",
            str(jobs),
            "--no-progress",
        ]
    )
    saved = capsys.readouterr().out.split()
    assert code == 0
    assert [p.split("/")[-1].split("_")[0] for p in saved] == ["job0001", "two"]
    sent = [b["prompt"] for b in fake.prompts]
    assert [(s["3"]["inputs"]["text"], s["8"]["inputs"]["seed"]) for s in sent] == [("first", 1), ("second", 2)]
    assert [json.loads(s["6"]["inputs"]["photos"]) for s in sent] == [[["anyphoto/alice.png"]], [["anyphoto/bob.png"]]]

    jobs.write_text('{"seed": 1}\n{"prompt": "x", "people": [{"photos": ["carol.png"], "box": [0, 0, 1, 1]}]}\n')
    assert main([str(write_workflow(tmp_path)), "--server", fake.url, "--jobs", str(jobs)]) == 2
    assert "jobs.jsonl:2: person 1: photo" in capsys.readouterr().err
    assert len(fake.prompts) == 2  # nothing was queued for the bad file


def test_out_naming_an_existing_file_is_refused_before_any_job(tmp_path, capsys):
    taken = tmp_path / "results.png"
    taken.write_bytes(b"an earlier result")
    assert main([str(tmp_path / "never_read.json"), "--out", str(taken), "--server", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert f"error: --out {taken} is a file; --out names the folder the images go to" in err
    assert taken.read_bytes() == b"an earlier result"
