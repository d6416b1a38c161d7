"""Location-aligned token pruning (paper section 3.2, eq. 13).

A canvas latent ``(B, C, H, W)`` (C = 16 for FLUX, H, W = pixels / 8) is packed into FLUX tokens
exactly as FLUX does: 2x2 patches, ``b c (h ph) (w pw) -> b (h w) (c ph pw)``, row-major over the
token grid (``index = row * w_tok + col``). One token covers 16x16 output pixels.

The canvas mask is downsampled to the token grid by area coverage: the fraction of each 16x16
cell covered by the face. ``rule`` decides which tokens are kept:

* ``"majority"`` (default): coverage >= 0.5, i.e. the token is mostly face;
* ``"any"``: coverage > 0 (keeps every token the face touches);
* ``"all"``: coverage == 1.

Kept tokens get RoPE ids ``(type_index, row, col)`` in float32, equal to the image tokens' ids at
the same cells (axis 0 aside), so they share the image's rotary phase.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

#: Output pixels per FLUX token side (VAE factor 8 x patch 2).
PIXELS_PER_TOKEN = 16
COVERAGE_RULES = ("majority", "any", "all")


def pack_latent(latent: Tensor, patch: int = 2) -> Tensor:
    """``(B, C, H, W)`` -> ``(B, (H/p)*(W/p), C*p*p)``; odd sizes are zero-padded (ComfyUI pads circularly;
    the pipeline and trainer use multiples of 16, so neither pads)."""
    b, c, h, w = latent.shape
    pad_h, pad_w = (-h) % patch, (-w) % patch
    if pad_h or pad_w:
        latent = torch.nn.functional.pad(latent, (0, pad_w, 0, pad_h))
        h, w = h + pad_h, w + pad_w
    x = latent.reshape(b, c, h // patch, patch, w // patch, patch)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(b, (h // patch) * (w // patch), c * patch * patch)


def unpack_tokens(tokens: Tensor, h_tok: int, w_tok: int, patch: int = 2) -> Tensor:
    """Inverse of :func:`pack_latent`: ``(B, h*w, C*p*p)`` -> ``(B, C, h*p, w*p)``."""
    b, n, d = tokens.shape
    c = d // (patch * patch)
    x = tokens.reshape(b, h_tok, w_tok, c, patch, patch)
    return x.permute(0, 3, 1, 4, 2, 5).reshape(b, c, h_tok * patch, w_tok * patch)


def image_token_ids(h_tok: int, w_tok: int, type_index: float = 0.0, device=None) -> Tensor:
    """float32 ``(h*w, 3)`` ids ``(type_index, row, col)`` in FLUX's row-major token order."""
    rows = torch.arange(h_tok, dtype=torch.float32, device=device)
    cols = torch.arange(w_tok, dtype=torch.float32, device=device)
    grid_r, grid_c = torch.meshgrid(rows, cols, indexing="ij")
    ids = torch.stack([torch.full_like(grid_r, float(type_index)), grid_r, grid_c], dim=-1)
    return ids.reshape(-1, 3)


def token_coverage(mask: np.ndarray, pixels_per_token: int = PIXELS_PER_TOKEN) -> np.ndarray:
    """Fraction of each token cell covered by ``mask`` ((H, W) bool): ``(ceil(H/16), ceil(W/16))``."""
    mask = np.asarray(mask, dtype=np.float64)
    h, w = mask.shape
    h_tok, w_tok = -(-h // pixels_per_token), -(-w // pixels_per_token)
    padded = np.zeros((h_tok * pixels_per_token, w_tok * pixels_per_token))
    padded[:h, :w] = mask
    cells = padded.reshape(h_tok, pixels_per_token, w_tok, pixels_per_token)
    return cells.mean(axis=(1, 3))


def token_keep_mask(mask: np.ndarray, rule: str = "majority", pixels_per_token: int = PIXELS_PER_TOKEN) -> np.ndarray:
    """Token-grid bool mask of kept tokens for a canvas mask, by coverage ``rule``."""
    cov = token_coverage(mask, pixels_per_token)
    if rule == "majority":
        return cov >= 0.5
    if rule == "any":
        return cov > 0.0
    if rule == "all":
        return cov >= 1.0
    raise ValueError(f"token coverage rule must be one of {COVERAGE_RULES}, got {rule!r}")


@dataclass(frozen=True)
class IdentityTokens:
    """One identity's pruned canvas tokens.

    ``tokens``: ``(B, n, C*4)`` packed latent tokens (before FLUX's ``img_in``);
    ``ids``: ``(n, 3)`` float32 RoPE ids; ``index``: ``(n,)`` long flat token-grid indices kept
    (row-major), ``grid``: ``(h_tok, w_tok)``.
    """

    tokens: Tensor
    ids: Tensor
    index: Tensor
    grid: tuple[int, int]

    @property
    def count(self) -> int:
        return int(self.index.numel())


def prune_canvas_tokens(latent: Tensor, keep: np.ndarray, type_index: float = 1.0) -> IdentityTokens:
    """Pack ``latent`` (B, C, H, W) and keep the tokens where ``keep`` (h_tok, w_tok) is True."""
    packed = pack_latent(latent)
    h_tok, w_tok = -(-latent.shape[2] // 2), -(-latent.shape[3] // 2)
    keep = np.asarray(keep, dtype=bool)
    if keep.shape != (h_tok, w_tok):
        raise ValueError(
            f"token mask {keep.shape} does not match the latent's token grid {(h_tok, w_tok)}; "
            "the canvas must have the output size"
        )
    index = torch.from_numpy(np.flatnonzero(keep.reshape(-1))).to(latent.device)
    ids = image_token_ids(h_tok, w_tok, type_index, device=latent.device)[index]
    return IdentityTokens(packed[:, index], ids, index, (h_tok, w_tok))
