"""A tiny fixed VAE stand-in (test-only): what AnyPhotoApply and VAEDecode call on ComfyUI's VAE.

``encode``: IMAGE ``[B, H, W, 3]`` in [0, 1] → latent ``[B, 16, H/8, W/8]`` (8×8 average pool of the
pixels mapped to [-1, 1], then a fixed 3 → 16 channel projection). ``decode``: latent → IMAGE
``[B, 8h, 8w, 3]`` in (0, 1) (:func:`tiny_flux.latent_to_image`). Not an inverse pair; only shapes and
determinism matter.
"""

from __future__ import annotations

import torch

from .tiny_flux import LATENT_CHANNELS, latent_to_image

DOWNSCALE = 8


class TinyVAE:
    def __init__(self):
        self.projection = torch.linspace(-1.0, 1.0, LATENT_CHANNELS * 3).reshape(LATENT_CHANNELS, 3)

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels[..., :3].permute(0, 3, 1, 2).float() * 2.0 - 1.0
        pooled = torch.nn.functional.avg_pool2d(x, DOWNSCALE)
        return torch.einsum("bchw,oc->bohw", pooled, self.projection)

    def decode(self, samples: torch.Tensor) -> torch.Tensor:
        return latent_to_image(samples)
