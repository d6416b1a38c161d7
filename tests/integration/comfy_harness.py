"""Helpers for tests against a real ComfyUI checkout (``COMFYUI_PATH``; see scripts/setup_comfyui.sh).

Two ways to use ComfyUI:

- **Library mode** (same process): :func:`import_comfy` puts the checkout on ``sys.path`` and imports
  ``comfy`` without parsing argv, forced to CPU. :func:`build_tiny_flux` and :func:`random_conditioning`
  give a tiny random-weight FLUX ``ModelPatcher`` and matching CONDITIONING; :func:`sample` runs
  ``comfy.sample.sample`` on them.
- **Server mode** (subprocess): :func:`start_server` runs ``main.py --cpu`` on a private base directory
  with chosen custom node folders (e.g. :data:`TINY_FLUX_PACK`) and stops it afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import torch

TINY_FLUX_PACK = Path(__file__).resolve().parent / "tiny_flux_pack"
SETUP_HINT = "set COMFYUI_PATH to a ComfyUI checkout; see scripts/setup_comfyui.sh"


def comfyui_path() -> Path:
    """The ComfyUI checkout named by ``COMFYUI_PATH`` (the folder holding main.py)."""
    value = os.environ.get("COMFYUI_PATH")
    if not value:
        raise RuntimeError(SETUP_HINT)
    path = Path(value).expanduser().resolve()
    if not (path / "main.py").is_file() or not (path / "comfy").is_dir():
        raise RuntimeError(f"COMFYUI_PATH={value} is not a ComfyUI checkout (no main.py / comfy/); {SETUP_HINT}")
    return path


def import_comfy():
    """Import ComfyUI in library mode (no argv parsing, CPU) and return ``comfy.model_management``."""
    path = str(comfyui_path())
    if path not in sys.path:
        sys.path.insert(0, path)
    import comfy.cli_args  # argv is parsed only after comfy.options.enable_args_parsing(); it is not called

    comfy.cli_args.args.cpu = True  # must precede the first import of comfy.model_management
    import comfy.model_management

    return comfy.model_management


def _tiny_flux_module():
    import_comfy()
    from .tiny_flux_pack import tiny_flux

    return tiny_flux


def build_tiny_flux(seed: int = 0, **config):
    """A ``ModelPatcher`` around a tiny random-weight FLUX; ``config`` as tiny_flux.tiny_flux_config
    (defaults: hidden 128, 2 heads, axes [8, 28, 28], depth 2, singles 2, context 64, vec 32)."""
    return _tiny_flux_module().build_tiny_flux(seed, **config)


def random_conditioning(patcher, seed: int, tokens: int = 16) -> list:
    """Random CONDITIONING ``[[cond [1, tokens, context_in_dim], {"pooled_output", "guidance"}]]``."""
    return _tiny_flux_module().random_conditioning(patcher, seed, tokens)


def empty_latent(width: int, height: int, batch: int = 1) -> torch.Tensor:
    """A zero FLUX latent ``[batch, 16, height/8, width/8]`` for an image of ``width``×``height`` pixels."""
    if width % 16 or height % 16:
        raise ValueError(f"width and height must be multiples of 16, got {width}x{height}")
    return torch.zeros(batch, _tiny_flux_module().LATENT_CHANNELS, height // 8, width // 8)


def weight_bytes(patcher) -> dict[str, torch.Tensor]:
    """Every parameter of the patcher's diffusion model as its stored bytes (fp8 and GGUF-quantised blocks as
    they are), cloned: a snapshot for bit-identity checks."""
    return {
        name: p.detach().as_subclass(torch.Tensor).clone().view(torch.uint8)
        for name, p in patcher.model.diffusion_model.named_parameters()
    }


def assert_weights_unchanged(patcher, snapshot: dict[str, torch.Tensor]) -> None:
    """After unloading every model: the weights equal ``snapshot`` (:func:`weight_bytes`) byte for byte and no
    parameter keeps a ``patches`` list (ComfyUI-GGUF's per-tensor LoRA patches)."""
    import comfy.model_management as mm

    mm.unload_all_models()
    now = weight_bytes(patcher)
    assert now.keys() == snapshot.keys()
    changed = [k for k in now if not torch.equal(now[k], snapshot[k])]
    assert not changed, f"base weights changed: {changed[:5]}"
    assert not any(getattr(p, "patches", []) for p in patcher.model.diffusion_model.parameters())


def sample(
    patcher,
    positive,
    negative,
    latent: torch.Tensor,
    steps: int = 4,
    cfg: float = 1.0,
    seed: int = 0,
    sampler_name: str = "euler",
    scheduler: str = "simple",
) -> torch.Tensor:
    """Sample like KSampler does: seeded noise, then ``comfy.sample.sample``. Returns the latent ``[B, 16, h, w]``."""
    import_comfy()
    import comfy.sample

    noise = comfy.sample.prepare_noise(latent, seed)
    return comfy.sample.sample(
        patcher, noise, steps, cfg, sampler_name, scheduler, positive, negative, latent, seed=seed, disable_pbar=True
    )


def tiny_api_workflow(width=128, height=96, seed=5, steps=2, prefix="harness"):
    """API-format graph: tiny FLUX + random conditioning + EmptyLatentImage + KSampler → SaveImage."""
    return {
        "1": {
            "class_type": "AnyPhotoTestTinyFluxLoader",
            "inputs": {"seed": 1, "hidden_size": 128, "num_heads": 2, "depth": 2, "depth_single_blocks": 2},
        },
        "2": {"class_type": "AnyPhotoTestRandomConditioning", "inputs": {"model": ["1", 0], "seed": 2, "tokens": 16}},
        "3": {"class_type": "AnyPhotoTestRandomConditioning", "inputs": {"model": ["1", 0], "seed": 3, "tokens": 16}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": width, "height": height, "batch_size": 1}},
        "5": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["1", 0],
                "positive": ["2", 0],
                "negative": ["3", 0],
                "latent_image": ["4", 0],
                "seed": seed,
                "steps": steps,
                "cfg": 1.0,
                "sampler_name": "euler",
                "scheduler": "simple",
                "denoise": 1.0,
            },
        },
        "6": {"class_type": "AnyPhotoTestLatentToImage", "inputs": {"samples": ["5", 0]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": prefix}},
    }


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ComfyServer:
    """A running ComfyUI server: ``url`` (http://127.0.0.1:PORT), its base directory and log file."""

    url: str
    base_dir: Path
    log_path: Path
    process: subprocess.Popen

    @property
    def output_dir(self) -> Path:
        return self.base_dir / "output"

    @property
    def input_dir(self) -> Path:
        return self.base_dir / "input"

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def get_json(self, route: str, timeout: float = 10.0):
        with urllib.request.urlopen(self.url + route, timeout=timeout) as resp:
            return json.loads(resp.read())


@contextlib.contextmanager
def start_server(base_dir, custom_nodes=(), port: int | None = None, ready_timeout: float = 120.0, extra_args=()):
    """Run ``main.py --cpu`` on ``base_dir`` with ``custom_nodes`` folders symlinked into its custom_nodes.

    Yields a :class:`ComfyServer` once ``GET /system_stats`` answers 200. The process is terminated on exit
    (killed if it does not stop within 10 s), also when startup fails or times out; a failed startup raises
    ``RuntimeError`` with the end of the server log.
    """
    base = Path(base_dir).resolve()
    nodes_dir = base / "custom_nodes"
    nodes_dir.mkdir(parents=True, exist_ok=True)
    for folder in custom_nodes:
        folder = Path(folder).resolve()
        link = nodes_dir / folder.name
        if not link.exists():
            link.symlink_to(folder, target_is_directory=True)
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [
        sys.executable,
        "main.py",
        "--cpu",
        "--listen",
        "127.0.0.1",
        "--port",
        str(port),
        "--disable-auto-launch",
        "--base-directory",
        str(base),
        *extra_args,
    ]
    log_path = base / "comfyui.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            cmd, cwd=comfyui_path(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    server = ComfyServer(url, base, log_path, process)
    try:
        _wait_ready(server, ready_timeout)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _wait_ready(server: ComfyServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"ComfyUI exited with code {server.process.returncode} during startup:\n{server.log_tail()}"
            )
        try:
            with urllib.request.urlopen(server.url + "/system_stats", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    raise RuntimeError(f"ComfyUI did not answer /system_stats within {timeout:.0f} s:\n{server.log_tail()}")
