"""The MiniWorld base transformer: a small FLUX.1-layout :class:`anyphoto_core.flux.Flux` pretrained on the
world's scenes and their prompts (no identities), with the same rectified-flow objective as the
adapter trainer (:mod:`train.losses`: ``x_t = (1 - t) x0 + t noise``, ``v = noise - x0``, logit-normal ``t``).

Latents come from the world VAE (model space), the prompts from the core's tiny text encoders
(``anyphoto_core.app.models.tiny``). Guidance is an input of FLUX.1-dev; here it is drawn uniformly
in [1, 5] per sample so that any guidance value the pipeline passes is in distribution.
The output ``flux.safetensors`` loads through ``anyphoto_core.flux.load_flux`` (which reads the width and depth
from the weights). ``latents=FILE`` caches the encoded scenes (float16, 33 MB for the 2000-scene world), so a
machine without the world or its VAE, such as a lent GPU, can train a wider base from that file alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm

from anyphoto_core.flux import Flux, FluxParams
from anyphoto_core.tokens import image_token_ids, pack_latent

from ..losses import flow_matching_loss, interpolate, sample_logit_normal
from .checkpoints import save_weights, train_loop
from .generate import read_world
from .vae import cosine_lr, load_world_vae


def base_params(hidden: int = 96, depth: int = 2, single_depth: int = 2) -> FluxParams:
    """The world base's FLUX.1 layout: ``hidden`` wide in heads of 32, ``depth`` double and ``single_depth``
    single blocks, fed by the tiny text encoders (T5 width 32, CLIP width 16)."""
    if hidden <= 0 or hidden % 32:
        raise ValueError(f"hidden must be a positive multiple of 32 (heads of 32), got {hidden}")
    return FluxParams.tiny(
        hidden_size=hidden,
        num_heads=hidden // 32,
        depth=depth,
        depth_single_blocks=single_depth,
        context_in_dim=32,
        vec_in_dim=16,
    )


MINIWORLD_FLUX = base_params()


@torch.no_grad()
def encode_scenes(world: Path, vae_path: Path) -> tuple[torch.Tensor, list[str]]:
    """Model-space latents of every training scene and its mirror, ``(2S, 16, h, w)``, and their captions."""
    from PIL import Image

    vae = load_world_vae(vae_path)
    _, records = read_world(world)
    scenes = [r for r in records if r["kind"] == "scene"]
    latents, captions = [], []
    for i in tqdm(range(0, len(scenes), 64), desc="encoding scenes"):
        chunk = scenes[i : i + 64]
        x = torch.from_numpy(np.stack([np.asarray(Image.open(world / r["image"]).convert("RGB")) for r in chunk]))
        x = x.permute(0, 3, 1, 2).float() / 127.5 - 1
        latents += [vae.encode(x), vae.encode(x.flip(3))]
        captions += [r["caption"] for r in chunk] * 2
    return torch.cat(latents), captions


def scene_latents(world: Path, vae_path: Path, cache: Path | None = None) -> tuple[torch.Tensor, list[str]]:
    """:func:`encode_scenes` through the cache file ``cache`` when given: read when it exists (then neither the
    world nor the VAE is opened), else written. With a cache, the latents are rounded to float16 (its dtype) in
    both cases, so the run that writes it and the runs that read it train on the same values."""
    if cache is not None and Path(cache).is_file():
        with safe_open(str(cache), "pt") as f:
            return f.get_tensor("latents").float(), json.loads(f.metadata()["captions"])
    latents, captions = encode_scenes(Path(world), Path(vae_path))
    if cache is None:
        return latents, captions
    half = latents.half().contiguous()
    Path(cache).parent.mkdir(parents=True, exist_ok=True)
    save_file({"latents": half}, str(cache), metadata={"captions": json.dumps(captions)})
    return half.float(), captions


def encode_captions(captions: list[str]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``caption -> (txt (1, L, 32), y (1, 16))`` from the tiny text encoders."""
    from anyphoto_core.app.models.tiny import load_tiny_text_encoders

    encoders = load_tiny_text_encoders()
    return {c: encoders.encode(c) for c in sorted(set(captions))}


def train_base(
    world: Path,
    vae_path: Path,
    out: Path,
    steps: int | None = None,
    seed: int = 0,
    batch: int = 16,
    lr: float = 1e-3,
    params: FluxParams = MINIWORLD_FLUX,
    device: str = "cpu",
    latents: Path | None = None,
) -> Path:
    """Train the base (resumes from ``out/checkpoint``) on ``device``; writes ``out/flux.safetensors``.
    ``latents``: the scene-latent cache of :func:`scene_latents`. Batches, timesteps and noise are drawn on the
    CPU, so a run's data do not depend on the device."""
    steps = steps or 2000
    torch.manual_seed(seed)
    scene, captions = scene_latents(world, vae_path, latents)
    text = encode_captions(captions)
    txt_all = torch.cat([text[c][0] for c in captions]).to(device)
    y_all = torch.cat([text[c][1] for c in captions]).to(device)
    x0_all = pack_latent(scene).to(device)
    h, w = scene.shape[2] // 2, scene.shape[3] // 2
    img_ids = image_token_ids(h, w)[None].to(device)
    model = Flux(params).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)

    def step_fn(step: int) -> dict[str, float]:
        gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
        pick = torch.randperm(len(x0_all), generator=gen)[:batch].to(device)
        x0, txt, y = x0_all[pick], txt_all[pick], y_all[pick]
        t = sample_logit_normal(batch, generator=gen).to(device)
        noise = torch.randn(x0.shape, generator=gen).to(device)
        guidance = (1 + 4 * torch.rand(batch, generator=gen)).to(device)
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, steps, lr)
        v = model(
            interpolate(x0, noise, t),
            img_ids.expand(batch, -1, -1),
            txt,
            torch.zeros(batch, txt.shape[1], 3, device=device),
            t,
            y,
            guidance,
        )
        loss = flow_matching_loss(v, x0, noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        return {"flow": float(loss)}

    seconds = train_loop(out, model, optimizer, steps, step_fn, "base")
    path = Path(out) / "flux.safetensors"
    save_weights(model, path)
    info = {"steps": steps, "seed": seed, "seconds": seconds, "device": device, "batch": batch}
    info |= {"hidden": params.hidden_size, "depth": params.depth, "single_depth": params.depth_single_blocks}
    (Path(out) / "flux.json").write_text(json.dumps(info))
    return path
