"""From faces and placements to the identity inputs of one forward pass.

The three steps every host runs (ComfyUI nodes, the standalone pipeline, the trainer):

1. :func:`build_canvases`: one location canvas per identity (paper appendix 0.A.3).
2. :func:`encode_canvas_tokens`: VAE-encode each canvas and keep the tokens its face covers
   (paper eq. 13). ``encode`` is the host's VAE: it takes images ``(N, 3, H, W)`` float in
   [-1, 1] and returns latents ``(N, 16, H/8, W/8)`` **in the diffusion model's latent space**
   (FLUX: ``(vae_latent - 0.1159) * 0.3611``; ComfyUI: ``VAE.encode`` then ``process_latent_in``).
3. :func:`identity_batch`: concatenate the pruned tokens, ids and per-identity modulation
   offsets (``weight_i * MLP(embedding_i)``) into a :class:`~anyphoto_core.flux.IdentityBatch`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from .canvas import DEFAULT_SCALE_RANGE, FacePatch, LocationCanvas, build_location_canvas
from .flux import IdentityBatch
from .placements import Placement
from .tokens import PIXELS_PER_TOKEN, IdentityTokens, prune_canvas_tokens, token_keep_mask
from .validation import check_identity_weights

EncodeFn = Callable[[Tensor], Tensor]


def build_canvases(
    patches: Sequence[FacePatch],
    placements: Sequence[Placement],
    size: tuple[int, int],
    scale_range=DEFAULT_SCALE_RANGE,
) -> list[LocationCanvas]:
    """One canvas per identity; ``patches[i]`` goes to ``placements[i]``. ``size`` = (width, height)."""
    if len(placements) < len(patches):
        raise ValueError(
            f"{len(patches)} people but only {len(placements)} placements: add a box per person "
            "(location editor, placements JSON or a layout photo)"
        )
    pairs = zip(patches, placements[: len(patches)], strict=True)
    return [build_location_canvas(p, pl.landmarks, size, scale_range) for p, pl in pairs]


def check_canvas_tokens(canvases: Sequence[LocationCanvas], rule: str = "majority") -> list[np.ndarray]:
    """Token keep-masks ``(h_tok, w_tok)`` of the canvases; ``ValueError`` naming the person whose face
    keeps no token (box outside the canvas or smaller than one 16 px token), never a dropped person."""
    keeps = []
    for k, canvas in enumerate(canvases):
        keep = token_keep_mask(canvas.mask, rule)
        if not keep.any():
            height, width = canvas.mask.shape
            (x, y), (w, h) = canvas.offset, canvas.patch_size
            where = "outside" if canvas.mask.sum() == 0 else "mostly outside of, or too small for,"
            raise ValueError(
                f"person {k + 1}: the face pasted at x={x}..{x + w}, y={y}..{y + h} px is {where} the "
                f"{width}x{height} canvas, covers no {PIXELS_PER_TOKEN}x{PIXELS_PER_TOKEN} token (rule "
                f"{rule!r}), so this person would be left out; move the box inside the image and make it at "
                f"least {2 * PIXELS_PER_TOKEN} px wide"
            )
        keeps.append(keep)
    return keeps


def canvases_to_tensor(canvases: Sequence[LocationCanvas]) -> Tensor:
    """Canvas images as ``(N, 3, H, W)`` float32 in [-1, 1]."""
    arr = np.stack([c.image for c in canvases]).astype(np.float32) / 127.5 - 1.0
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


def encode_canvas_tokens(
    canvases: Sequence[LocationCanvas], encode: EncodeFn, rule: str = "majority", type_index: float = 1.0
) -> list[IdentityTokens]:
    """VAE-encode every canvas (one batched call) and prune each to its face tokens."""
    if not canvases:
        return []
    keeps = check_canvas_tokens(canvases, rule)
    latents = encode(canvases_to_tensor(canvases))
    return [prune_canvas_tokens(latents[i : i + 1], keep, type_index) for i, keep in enumerate(keeps)]


def identity_batch(
    tokens: Sequence[IdentityTokens],
    deltas: Tensor,
    batch: int,
    weights: Sequence[float] | None = None,
) -> IdentityBatch:
    """Assemble the forward's identity inputs.

    Args:
        tokens: per identity, pruned tokens ``(1, n_i, 64)``.
        deltas: ``(N, hidden)`` projector outputs ``MLP(embedding_i)``.
        batch: batch size of the forward (tokens and ids are repeated per row).
        weights: per-identity multiplier of ``delta`` (identity strength), default 1.
    """
    n = len(tokens)
    if deltas.shape[0] != n:
        raise ValueError(f"{n} identities have token sets but {deltas.shape[0]} embeddings")
    weights = check_identity_weights([1.0] * n if weights is None else weights, n, "identity weights")
    if n == 0:
        return IdentityBatch(
            deltas.new_zeros(batch, 0, 64), torch.zeros(batch, 0, 3), (), deltas.new_zeros(batch, 0, 0)
        )
    toks = torch.cat([t.tokens for t in tokens], dim=1).expand(batch, -1, -1)
    ids = torch.cat([t.ids for t in tokens], dim=0)[None].expand(batch, -1, -1)
    scale = torch.tensor(weights, dtype=deltas.dtype, device=deltas.device)[:, None]
    delta = (deltas * scale)[None].expand(batch, -1, -1)
    return IdentityBatch(toks, ids, tuple(t.count for t in tokens), delta)
