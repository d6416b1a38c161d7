"""Preview grids during training: fixed samples (stream positions 0..n-1, no augmentation) generated
with the core Euler sampler and the patched forward; one row per sample: target | canvases | generated."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from anyphoto_core.conditioning import identity_inputs
from anyphoto_core.sampling import euler_sample, flux_schedule
from anyphoto_core.tokens import unpack_tokens

from .models import parameter_dtype


@torch.no_grad()
def generate(trainer, position: int, steps: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(target, canvas composite, generated) uint8 (R, R, 3) for the un-augmented sample at ``position``."""
    sample = trainer.data.build(position, trainer.step, augment=False)
    s = trainer.prepare(sample)
    flux, adapter = trainer.models.flux, trainer.adapter
    dtype = parameter_dtype(flux)
    ids = identity_inputs(adapter, s.tokens, s.embeddings)
    txt_ids = torch.zeros(1, s.txt.shape[1], 3, device=s.x0.device)
    guidance = torch.full((1,), trainer.config.model.guidance, device=s.x0.device, dtype=dtype)

    def velocity(x, t, with_identity):
        return flux.forward_anyphoto(
            x.to(dtype),
            s.img_ids,
            s.txt.to(dtype),
            txt_ids,
            t.to(dtype),
            s.y.to(dtype),
            guidance,
            ids if with_identity else None,
        ).float()

    noise = torch.randn(s.x0.shape, generator=torch.Generator().manual_seed(seed)).to(s.x0.device)
    x0 = euler_sample(velocity, noise, flux_schedule(steps, s.x0.shape[1]))
    image = trainer.models.vae.decode(unpack_tokens(x0, *s.grid))
    generated = ((image[0].permute(1, 2, 0).cpu().numpy() + 1) * 127.5).clip(0, 255).astype(np.uint8)
    canvas = np.min(np.stack([c.image for c in sample.canvases]), axis=0)
    return sample.image, canvas, generated


def generate_grid(trainer, count: int = 2) -> np.ndarray:
    """One row per sample (:func:`generate`: target | canvases | generated), uint8 (count * R, 3 * R, 3)."""
    rows = [
        np.concatenate(generate(trainer, i, trainer.config.run.sample_steps), axis=1)
        for i in range(min(count, len(trainer.data)))
    ]
    return np.concatenate(rows, axis=0)


def write_grid(grid: np.ndarray, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(path)
    return path
