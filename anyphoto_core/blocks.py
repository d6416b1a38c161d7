"""AnyPhoto double- and single-block forwards over ``[text | image | id_1..id_N]``.

Written against the FLUX.1 module layout shared by black-forest-labs/flux and ComfyUI
(``block.img_mod``, ``block.img_norm1``, ``block.img_attn.{qkv,norm,proj}``, ``block.img_mlp[0..2]``,
``block.txt_*``; single blocks ``modulation``, ``pre_norm``, ``linear1``, ``norm``, ``mlp_act``,
``linear2``). The forwards only *call* those submodules (never read ``.weight``), so a host's
casting, offloading and weight patches keep working.

Rules (paper sections 3.3-3.4):

* Text and image tokens are computed exactly as stock FLUX computes them.
* Identity tokens ride in the image stream (after the image tokens), use the image-path
  weights plus the adapter's LoRA delta, and are modulated by ``vec + delta_c_i``.
* Attention is the identity-isolated star (:mod:`anyphoto_core.attention`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .attention import AttentionFn, isolated_attention, sdpa_attention

LoraDeltaFn = Callable[[str, Tensor], "Tensor | None"]


def no_lora(path: str, x: Tensor) -> None:
    """The LoRA function of a forward without LoRA: no delta for any path."""
    return None


@dataclass
class IdentityContext:
    """Everything the block forwards need about the identity tokens of one forward pass.

    ``lengths``: token count per identity, in sequence order after the image tokens.
    ``id_vec``: ``(B, N, hidden)`` conditioning per identity, ``vec + delta_c_i``.
    ``lora_delta(path, x)``: LoRA term for the linear at ``path`` (e.g.
    ``"double_blocks.3.img_attn.qkv"``) on identity rows ``x``, or None.
    ``attn_fn``: attention kernel (see attention.py). ``isolate``: star mask on/off.
    ``global_sees_identities``: optional ``(B,)`` bool (False hides identities from that row's
    text/image queries, e.g. the uncond half of CFG).
    """

    lengths: Sequence[int]
    id_vec: Tensor
    lora_delta: LoraDeltaFn = no_lora
    attn_fn: AttentionFn = sdpa_attention
    isolate: bool = True
    global_sees_identities: Tensor | None = None

    @property
    def total(self) -> int:
        return int(sum(self.lengths))

    def token_owner(self, device) -> Tensor:
        """``(M,)`` long: identity index of each identity token."""
        return torch.repeat_interleave(  # output_size: no device-to-host sync (and meta tensors work)
            torch.arange(len(self.lengths), device=device),
            torch.tensor(list(self.lengths), device=device),
            output_size=self.total,
        )


def apply_rope(x: Tensor, pe: Tensor) -> Tensor:
    """FLUX RoPE: ``x`` ``(B, H, N, D)``, ``pe`` ``(B, 1, N, D/2, 2, 2)`` float32 -> like ``x``."""
    x_ = x.to(pe.dtype).reshape(*x.shape[:-1], -1, 1, 2)
    out = pe[..., 0] * x_[..., 0] + pe[..., 1] * x_[..., 1]
    return out.reshape(*x.shape).type_as(x)


def _split_heads(qkv: Tensor, num_heads: int) -> tuple[Tensor, Tensor, Tensor]:
    """``(B, N, 3*H*D)`` -> three ``(B, H, N, D)``."""
    b, n, _ = qkv.shape
    q, k, v = qkv.view(b, n, 3, num_heads, -1).permute(2, 0, 3, 1, 4)
    return q, k, v


@dataclass
class _RowMod:
    """Modulation factors for global rows (``(B, 1, C)``) and identity rows (``(B, M, C)``)."""

    shift: Tensor
    scale: Tensor
    gate: Tensor
    id_shift: Tensor
    id_scale: Tensor
    id_gate: Tensor

    def affine(self, x: Tensor, n_first: int) -> Tensor:
        """``(1 + scale) * x + shift`` with each row's own factors. ``x``: ``(B, n_first + M, C)``.

        One stock-FLUX op over all rows (global factors), then the ``M`` identity rows are
        recomputed with their own factors and written over the tail: no concatenation copy of
        the image stream, and autograd-safe (nothing saved is modified).
        """
        out = torch.addcmul(self.shift, x, 1 + self.scale)
        out[:, n_first:] = torch.addcmul(self.id_shift, x[:, n_first:], 1 + self.id_scale)
        return out

    def gated_residual(self, x: Tensor, y: Tensor, n_first: int) -> Tensor:
        """``x + gate * y`` with each row's own gate (same tail-overwrite scheme as :meth:`affine`)."""
        out = x + self.gate * y
        out[:, n_first:] = torch.addcmul(x[:, n_first:], self.id_gate, y[:, n_first:])
        return out


def _row_mods(mod_module, vec: Tensor, ctx: IdentityContext, owner: Tensor) -> list[_RowMod]:
    """One Modulation call on ``[vec, vec + delta_1, ...]``; identity factors gathered per token."""
    stacked = torch.cat([vec[:, None, :], ctx.id_vec.to(vec.dtype)], dim=1)  # (B, 1 + N, C)
    token_rows = owner + 1  # row 0 of ``stacked`` is the global vec
    out = []
    for m in mod_module(stacked):
        if m is None:
            continue
        out.append(
            _RowMod(
                m.shift[:, :1],
                m.scale[:, :1],
                m.gate[:, :1],
                m.shift.index_select(1, token_rows),
                m.scale.index_select(1, token_rows),
                m.gate.index_select(1, token_rows),
            )
        )
    return out


def _lora_linear(linear, x: Tensor, n_first: int, path: str, ctx: IdentityContext) -> Tensor:
    """``linear(x)`` for all rows, plus the LoRA delta on identity rows ``x[:, n_first:]``.

    The delta is added in place on the identity rows of the linear's fresh output (a linear
    saves its input, not its output, for backward), so the big stream is never copied.
    """
    y = linear(x)
    delta = ctx.lora_delta(path, x[:, n_first:])
    if delta is not None:
        y[:, n_first:] += delta
    return y


def double_block_forward(
    block, img: Tensor, txt: Tensor, vec: Tensor, pe: Tensor, ctx: IdentityContext, prefix: str
) -> tuple[Tensor, Tensor]:
    """One FLUX double block with identity tokens appended to ``img``.

    Args:
        img: ``(B, n_img + M, C)`` image tokens followed by the ``M`` identity tokens.
        txt: ``(B, n_txt, C)``. vec: ``(B, C)``.
        pe: ``(B, 1, n_txt + n_img + M, D/2, 2, 2)`` RoPE for ``[txt | img | ids]``.
        prefix: module path of this block, e.g. ``"double_blocks.3"`` (for LoRA lookup).
    Returns:
        ``(img, txt)`` of the same shapes.
    """
    n_txt, m = txt.shape[1], ctx.total
    n_img = img.shape[1] - m
    owner = ctx.token_owner(img.device)
    heads = block.num_heads
    img_mod1, img_mod2 = _row_mods(block.img_mod, vec, ctx, owner)
    txt_mod1, txt_mod2 = block.txt_mod(vec)

    img_in = img_mod1.affine(block.img_norm1(img), n_img)
    img_qkv = _lora_linear(block.img_attn.qkv, img_in, n_img, f"{prefix}.img_attn.qkv", ctx)
    img_q, img_k, img_v = _split_heads(img_qkv, heads)
    img_q, img_k = block.img_attn.norm(img_q, img_k, img_v)

    txt_in = torch.addcmul(txt_mod1.shift, block.txt_norm1(txt), 1 + txt_mod1.scale)
    txt_q, txt_k, txt_v = _split_heads(block.txt_attn.qkv(txt_in), heads)
    txt_q, txt_k = block.txt_attn.norm(txt_q, txt_k, txt_v)

    q = apply_rope(torch.cat((txt_q, img_q), dim=2), pe)
    k = apply_rope(torch.cat((txt_k, img_k), dim=2), pe)
    v = torch.cat((txt_v, img_v), dim=2)
    attn = isolated_attention(q, k, v, n_txt + n_img, ctx.lengths, ctx.attn_fn, ctx.isolate, ctx.global_sees_identities)
    txt_attn, img_attn = attn[:, :n_txt], attn[:, n_txt:]

    img = img_mod1.gated_residual(
        img, _lora_linear(block.img_attn.proj, img_attn, n_img, f"{prefix}.img_attn.proj", ctx), n_img
    )
    mlp_in = img_mod2.affine(block.img_norm2(img), n_img)
    hidden = block.img_mlp[1](_lora_linear(block.img_mlp[0], mlp_in, n_img, f"{prefix}.img_mlp.0", ctx))
    img = img_mod2.gated_residual(img, _lora_linear(block.img_mlp[2], hidden, n_img, f"{prefix}.img_mlp.2", ctx), n_img)

    txt = txt + txt_mod1.gate * block.txt_attn.proj(txt_attn)
    txt_mlp_in = torch.addcmul(txt_mod2.shift, block.txt_norm2(txt), 1 + txt_mod2.scale)
    txt = txt + txt_mod2.gate * block.txt_mlp(txt_mlp_in)
    if txt.dtype == torch.float16:
        txt = torch.nan_to_num(txt, nan=0.0, posinf=65504, neginf=-65504)
    return img, txt


def single_block_forward(block, x: Tensor, vec: Tensor, pe: Tensor, ctx: IdentityContext, prefix: str) -> Tensor:
    """One FLUX single block over ``x = [txt | img | ids]`` ``(B, n_global + M, C)``."""
    m = ctx.total
    n_global = x.shape[1] - m
    owner = ctx.token_owner(x.device)
    (mod,) = _row_mods(block.modulation, vec, ctx, owner)
    hidden_size = x.shape[-1]

    x_in = mod.affine(block.pre_norm(x), n_global)
    lin1 = _lora_linear(block.linear1, x_in, n_global, f"{prefix}.linear1", ctx)
    qkv, mlp = torch.split(lin1, [3 * hidden_size, lin1.shape[-1] - 3 * hidden_size], dim=-1)
    q, k, v = _split_heads(qkv, block.num_heads)
    q, k = block.norm(q, k, v)
    attn = isolated_attention(
        apply_rope(q, pe),
        apply_rope(k, pe),
        v,
        n_global,
        ctx.lengths,
        ctx.attn_fn,
        ctx.isolate,
        ctx.global_sees_identities,
    )
    lin2_in = torch.cat((attn, block.mlp_act(mlp)), dim=2)
    x = mod.gated_residual(x, _lora_linear(block.linear2, lin2_in, n_global, f"{prefix}.linear2", ctx), n_global)
    if x.dtype == torch.float16:
        x = torch.nan_to_num(x, nan=0.0, posinf=65504, neginf=-65504)
    return x
