"""From faces and placements to the identity inputs of one forward pass.

The three steps every host runs (ComfyUI nodes, the standalone pipeline, the trainer):

1. :func:`build_canvases`: one location canvas per identity (paper appendix 0.A.3).
2. :func:`encode_canvas_tokens`: VAE-encode each canvas and keep the tokens its face covers
   (paper eq. 13). ``encode`` is the host's VAE: it takes images ``(N, 3, H, W)`` float in
   [-1, 1] and returns latents ``(N, 16, H/8, W/8)`` **in the diffusion model's latent space**
   (FLUX: ``(vae_latent - 0.1159) * 0.3611``; ComfyUI: ``VAE.encode`` then ``process_latent_in``).
3. :func:`identity_inputs`: project the embeddings with the adapter and assemble the forward's
   :class:`~anyphoto_core.identity.IdentityInputs` (tokens, ids, ``weight_i * MLP(embedding_i)``,
   the LoRA function at the chosen strength).

The coverage rule and type index come from the adapter (``adapter.config``), never from the host.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from .adapter import AnyPhotoAdapter
from .canvas import DEFAULT_SCALE_RANGE, FacePatch, LocationCanvas, build_location_canvas
from .identity import IdentityInputs
from .placements import Placement
from .tokens import PIXELS_PER_TOKEN, IdentityTokens, prune_canvas_tokens, token_keep_mask

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
    canvases: Sequence[LocationCanvas], encode: EncodeFn, *, rule: str, type_index: float, allow_empty: bool = False
) -> list[IdentityTokens]:
    """VAE-encode every canvas (one batched call) and prune each to its face tokens.

    ``rule`` (token coverage rule) and ``type_index`` (RoPE axis 0) are the adapter's
    (``adapter.config.token_rule``, ``adapter.config.type_index``). A person whose face keeps no
    token is an error (:func:`check_canvas_tokens`) unless ``allow_empty`` (training samples,
    where a face may legitimately be too small)."""
    if not canvases:
        return []
    if allow_empty:
        keeps = [token_keep_mask(c.mask, rule) for c in canvases]
    else:
        keeps = check_canvas_tokens(canvases, rule)
    latents = encode(canvases_to_tensor(canvases))
    return [prune_canvas_tokens(latents[i : i + 1], keep, type_index) for i, keep in enumerate(keeps)]


def identity_inputs(
    adapter: AnyPhotoAdapter,
    tokens: Sequence[IdentityTokens],
    embeddings: Tensor,
    weights: Sequence[float] | None = None,
    lora_strength: float = 1.0,
) -> IdentityInputs:
    """The forward's identity inputs from pruned tokens and embeddings ``(N, 512)``.

    ``delta_i = weights[i] * adapter.projector(embeddings[i])`` (float32, on the adapter's device;
    differentiable, for training) and the LoRA function ``lora_strength * lora_delta``.
    """
    deltas = adapter.modulation_offsets(embeddings).float()
    return IdentityInputs.from_tokens(tokens, deltas, weights, adapter.lora_function(lora_strength))


#: What identity guidance's second pass runs: ``"trained"`` = the null condition identity dropout trains
#: (:func:`null_identity_inputs`); ``"none"`` = no identities at all (stock FLUX).
IDENTITY_NULLS = ("trained", "none")


def null_identity_inputs(adapter: AnyPhotoAdapter, inputs: IdentityInputs) -> IdentityInputs:
    """The null condition training's identity dropout teaches (paper: 15 %, "setting both the location
    tokens and the ArcFace embeddings to zero"): every identity of ``inputs`` keeps its token positions
    and ids, its token values are 0 and its embedding is 0, so ``delta_i = MLP(0)`` (no identity weight:
    dropout never scaled it); the LoRA function is unchanged. The unconditional pass of identity guidance."""
    zeros = torch.zeros(len(inputs.lengths), adapter.config.embedding_dim, device=inputs.delta.device)
    with torch.no_grad():
        null_delta = adapter.modulation_offsets(zeros).float()
    return dataclasses.replace(
        inputs,
        tokens=torch.zeros_like(inputs.tokens),
        delta=null_delta.to(device=inputs.delta.device, dtype=inputs.delta.dtype),
    )
