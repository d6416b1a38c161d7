"""The MiniWorld VAE: a small diffusers ``AutoencoderKL`` in the FLUX VAE layout (16 latent channels, 8x).

Trained on the world's pictures (scenes and reference photos) with an L1 + image-gradient L1
reconstruction loss and a small KL term. The shipped file is a diffusers-layout state dict that
loads through the project's loader (``anyphoto_core.app.models.vae.flux_vae_from_state_dict`` with
:data:`MINIWORLD_VAE_CONFIG`); the latent shift/scale (FLUX's 0.1159/0.3611 for the real VAE) are
measured on the world after training so that model-space latents have mean 0 and unit variance.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from anyphoto_core.app.models.vae import small_flux_vae_config

from .checkpoints import save_weights, train_loop
from .generate import read_world

MINIWORLD_VAE_CONFIG = small_flux_vae_config(
    [16, 32, 64, 64], 1, 8, sample_size=128, scaling_factor=1.0, shift_factor=0.0
)
KL_WEIGHT = 1e-6


def world_images(folder: Path) -> np.ndarray:
    """Every scene and reference photo of the world at scene size, ``(N, S, S, 3)`` uint8."""
    from PIL import Image

    spec, records = read_world(folder)
    size = (spec.size, spec.size)
    return np.stack(
        [
            np.asarray(Image.open(Path(folder) / r["image"]).convert("RGB").resize(size, Image.Resampling.LANCZOS))
            for r in records
        ]
    )


def image_gradient_l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """L1 between the horizontal and vertical finite differences of two ``(B, C, H, W)`` images."""
    dx = lambda x: x[..., :, 1:] - x[..., :, :-1]  # noqa: E731
    dy = lambda x: x[..., 1:, :] - x[..., :-1, :]  # noqa: E731
    return F.l1_loss(dx(a), dx(b)) + F.l1_loss(dy(a), dy(b))


def cosine_lr(step: int, steps: int, peak: float, warmup: int = 100) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(steps - warmup, 1)))


def train_vae(
    world: Path,
    out: Path,
    steps: int | None = None,
    seed: int = 0,
    batch: int = 12,
    lr: float = 1e-3,
    crop: int = 32,
    init: Path | None = None,
) -> Path:
    """Train the VAE on random ``crop`` x ``crop`` windows (it is convolutional; small windows are what 2
    shared CPU cores afford), resuming from ``out/checkpoint``; writes ``out/vae.safetensors`` and ``out/vae.json``.
    ``init``: a ``vae.safetensors`` to start from (a fine-tune; recorded in ``vae.json``) instead of random weights."""
    from diffusers import AutoencoderKL

    steps = steps or 1200
    torch.manual_seed(seed)
    images = world_images(world)
    model = AutoencoderKL(**MINIWORLD_VAE_CONFIG)
    if init is not None:
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(init)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)

    def step_fn(step: int) -> dict[str, float]:
        rng = np.random.default_rng([seed, step])
        side = images.shape[1]
        windows = []
        for k in rng.choice(len(images), batch, replace=False):
            y0, x0 = rng.integers(0, side - crop + 1, 2) // 8 * 8  # latent-grid aligned
            windows.append(images[k, y0 : y0 + crop, x0 : x0 + crop])
        x = torch.from_numpy(np.stack(windows)).permute(0, 3, 1, 2).float() / 127.5 - 1
        if rng.random() < 0.5:
            x = x.flip(3)
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, steps, lr)
        gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
        post = model.encode(x).latent_dist
        z = post.mean + post.std * torch.randn(post.mean.shape, generator=gen)
        rec = model.decode(z).sample
        l1 = F.l1_loss(rec, x)
        grad = image_gradient_l1(rec, x)
        loss = l1 + 0.5 * grad + KL_WEIGHT * post.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        return {"l1": float(l1), "grad": float(grad)}

    seconds = train_loop(out, model, optimizer, steps, step_fn, "vae")
    model.eval()
    with torch.no_grad():
        sample = torch.from_numpy(images[:: max(len(images) // 256, 1)]).permute(0, 3, 1, 2).float() / 127.5 - 1
        z = torch.cat([model.encode(sample[i : i + 32]).latent_dist.mode() for i in range(0, len(sample), 32)])
    config = dict(
        MINIWORLD_VAE_CONFIG, shift_factor=round(float(z.mean()), 4), scaling_factor=round(1 / float(z.std()), 4)
    )
    save_weights(model, Path(out) / "vae.safetensors")
    (Path(out) / "vae.json").write_text(
        json.dumps(
            {"config": config, "steps": steps, "seed": seed, "seconds": seconds, "init": str(init) if init else None}
        )
    )
    return Path(out) / "vae.safetensors"


def load_world_vae(path: Path, device="cpu"):
    """The trained VAE through the project loader (:class:`~anyphoto_core.app.models.vae.FluxVAE`)."""
    from anyphoto_core.app.models.vae import load_flux_vae

    config = json.loads(Path(path).with_suffix(".json").read_text())["config"]
    return load_flux_vae(path, config=config, device=device)
