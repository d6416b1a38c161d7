"""The identity inputs of one AnyPhoto forward pass: one type for every host.

The reference FLUX (:meth:`anyphoto_core.flux.Flux.forward_anyphoto`), the ComfyUI patches
(``nodes/patching.py``), the standalone pipeline and the trainer all build an
:class:`IdentityInputs` (with :meth:`IdentityInputs.from_tokens` or
:func:`anyphoto_core.conditioning.identity_inputs`) and use its two methods:

* :meth:`IdentityInputs.append_to_image`: identity tokens through the host's own ``img_in``,
  appended to the image stream, and their fp32 RoPE ids appended to the image ids;
* :meth:`IdentityInputs.context`: the :class:`~anyphoto_core.blocks.IdentityContext` the block
  forwards read (``vec + delta_c_i`` per identity, the LoRA function, the attention options).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from .attention import AttentionFn, sdpa_attention
from .blocks import IdentityContext, LoraDeltaFn, no_lora
from .tokens import PIXELS_PER_TOKEN, IdentityTokens
from .validation import check_identity_weights


@dataclass(frozen=True)
class IdentityInputs:
    """Pruned, projected identity inputs of one forward (shared by every batch row).

    ``tokens``: ``(1, M, C)`` packed canvas tokens of all identities, concatenated in identity
    order (model latent space, before ``img_in``; C = 64 for FLUX);
    ``ids``: ``(M, 3)`` float32 RoPE ids ``(type_index, row, col)``;
    ``lengths``: tokens per identity (sum = M);
    ``delta``: ``(N, hidden)`` modulation offsets ``weight_i * MLP(embedding_i)`` (weights applied);
    ``grid``: ``(h_tok, w_tok)`` token grid the ids refer to (the output latent's);
    ``lora_delta(path, x)``: the identity-only LoRA term (strength applied), or None for no LoRA.
    """

    tokens: Tensor
    ids: Tensor
    lengths: tuple[int, ...]
    delta: Tensor
    grid: tuple[int, int]
    lora_delta: LoraDeltaFn | None = None

    @classmethod
    def from_tokens(
        cls,
        tokens: Sequence[IdentityTokens],
        deltas: Tensor,
        weights: Sequence[float] | None = None,
        lora_delta: LoraDeltaFn | None = None,
    ) -> IdentityInputs:
        """Concatenate per-identity tokens and ids and scale each offset by its weight.

        Args:
            tokens: per identity, pruned tokens ``(1, n_i, C)`` on one token grid.
            deltas: ``(N, hidden)`` projector outputs ``MLP(embedding_i)``.
            weights: per-identity multiplier of ``delta_i`` (identity strength), default 1.
            lora_delta: the LoRA function (strength already applied), or None.
        """
        n = len(tokens)
        if deltas.shape[0] != n:
            raise ValueError(f"{n} identities have token sets but {deltas.shape[0]} embeddings")
        weights = check_identity_weights([1.0] * n if weights is None else weights, n, "identity weights")
        if n == 0:
            raise ValueError("no identities: run the plain forward instead of building identity inputs")
        grids = {t.grid for t in tokens}
        if len(grids) != 1:
            raise ValueError(f"the identities' canvases have different token grids {sorted(grids)}; use one size")
        scale = torch.tensor(weights, dtype=deltas.dtype, device=deltas.device)[:, None]
        return cls(
            tokens=torch.cat([t.tokens for t in tokens], dim=1),
            ids=torch.cat([t.ids for t in tokens], dim=0).float(),
            lengths=tuple(t.count for t in tokens),
            delta=deltas * scale,
            grid=grids.pop(),
            lora_delta=lora_delta,
        )

    @property
    def total(self) -> int:
        """``M``: identity tokens over all identities."""
        return int(sum(self.lengths))

    def to(self, device=None, dtype: torch.dtype | None = None) -> IdentityInputs:
        """Tokens and offsets on ``device`` in ``dtype``; the ids stay float32 (RoPE precision)."""
        return replace(
            self,
            tokens=self.tokens.to(device=device, dtype=dtype),
            ids=self.ids.to(device=device, dtype=torch.float32),
            delta=self.delta.to(device=device, dtype=dtype),
        )

    def check_latent(self, latent_hw: Sequence[int]) -> None:
        """Raise ``ValueError`` naming both sizes when a latent ``(h, w)`` (VAE latent pixels) does not
        have the canvases' token grid (FLUX packs 2x2 latent pixels into one token)."""
        h, w = int(latent_hw[0]), int(latent_hw[1])
        if (-(-h // 2), -(-w // 2)) != tuple(self.grid):
            p = PIXELS_PER_TOKEN
            raise ValueError(
                f"the latent is {w * 8}x{h * 8} px but the AnyPhoto canvas is "
                f"{self.grid[1] * p}x{self.grid[0] * p} px; use the same width and height for the empty "
                "latent and the location canvas"
            )

    def append_to_image(
        self, img: Tensor, img_ids: Tensor, img_in: Callable[[Tensor], Tensor]
    ) -> tuple[Tensor, Tensor]:
        """``[img | img_in(tokens)]`` ``(B, Ni + M, hidden)`` and ``[img_ids | ids]`` ``(B, Ni + M, 3)`` float32.

        ``img`` is the image stream after ``img_in``; ``img_in`` is the host's own input linear,
        called once on the identity tokens (on ``img``'s device and dtype) and shared by every row.
        """
        batch = img.shape[0]
        id_tokens = img_in(self.tokens.to(device=img.device, dtype=img.dtype)).to(img.dtype)
        ids = self.ids.to(device=img_ids.device, dtype=torch.float32)[None]
        return (
            torch.cat([img, id_tokens.expand(batch, -1, -1)], dim=1),
            torch.cat([img_ids.float(), ids.expand(batch, -1, -1)], dim=1),
        )

    def context(
        self,
        vec: Tensor,
        attn_fn: AttentionFn = sdpa_attention,
        isolate: bool = True,
        global_sees_identities: Tensor | None = None,
    ) -> IdentityContext:
        """The block forwards' context for conditioning ``vec`` ``(B, hidden)``: ``id_vec = vec + delta_i``."""
        delta = self.delta.to(device=vec.device, dtype=vec.dtype)
        return IdentityContext(
            lengths=self.lengths,
            id_vec=vec[:, None, :] + delta[None],
            lora_delta=self.lora_delta or no_lora,
            attn_fn=attn_fn,
            isolate=isolate,
            global_sees_identities=global_sees_identities,
        )
