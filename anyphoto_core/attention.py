"""Identity-isolated attention (paper section 3.4): a star topology over ``[global | id_1..id_N]``.

Global tokens (text + image, the first ``n_global`` of the sequence) attend to every token;
identity-i tokens attend to the global tokens and to identity i only.

Two implementations with one contract:

* :func:`masked_reference_attention` builds the full additive ``(N, N)`` star mask and makes one
  call. Plain and obviously right; used by tests as the reference.
* :func:`isolated_attention` is exact and never builds an ``(N, N)`` mask: one unmasked call for
  the global queries over all keys, then the identity queries in one of two ways, whichever
  computes less:

  - *masked* (pruned face tokens, the usual case): one call for all identity queries over all
    keys with an additive ``(M, N)`` mask that only hides other identities (``M`` = identity
    tokens, a few hundred); the hidden ``M^2 - sum(m_i^2)`` scores are computed and discarded;
  - *split* (large identity blocks, e.g. unpruned canvases): one unmasked call per identity over
    ``[global keys | own keys]``, used when the masked call would waste more than
    :data:`SPLIT_WASTE_FRACTION` of its work.

  With a single identity no mask is needed at all.

All functions take ``q, k, v`` of shape ``(B, H, N, D)`` with RoPE already applied and return
``(B, N, H*D)``. The attention kernel is a parameter: ``attn_fn(q, k, v, mask)`` with ``mask``
``None`` or additive float broadcastable to ``(B, H, Nq, Nk)``; a host passes its own (ComfyUI's
selected attention) so sage/flash/xformers still apply.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

AttentionFn = Callable[[Tensor, Tensor, Tensor, Tensor | None], Tensor]
#: Split identity queries into per-identity calls when the masked call would spend more than this
#: fraction of its query-key scores on hidden (other-identity) pairs.
SPLIT_WASTE_FRACTION = 0.25


def sdpa_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> Tensor:
    """Default kernel: torch SDPA. ``(B, H, Nq, D)`` x ``(B, H, Nk, D)`` -> ``(B, Nq, H*D)``."""
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    b, h, n, d = out.shape
    return out.transpose(1, 2).reshape(b, n, h * d)


def star_mask(n_global: int, lengths: Sequence[int], dtype=torch.float32, device=None) -> Tensor:
    """Full additive ``(N, N)`` star mask (0 = visible, -inf = hidden). Reference only."""
    n = n_global + sum(lengths)
    allowed = torch.zeros(n, n, dtype=torch.bool, device=device)
    allowed[:n_global] = True
    allowed[:, :n_global] = True
    start = n_global
    for length in lengths:
        allowed[start : start + length, start : start + length] = True
        start += length
    return torch.zeros(n, n, dtype=dtype, device=device).masked_fill(~allowed, float("-inf"))


def identity_query_mask(n_global: int, lengths: Sequence[int], dtype=torch.float32, device=None) -> Tensor:
    """Additive ``(M, N)`` mask for the identity queries only: each sees global + its own keys."""
    m = sum(lengths)
    owner = torch.repeat_interleave(  # output_size: no device-to-host sync (and meta tensors work)
        torch.arange(len(lengths), device=device), torch.tensor(list(lengths), device=device), output_size=m
    )
    same = owner[:, None] == owner[None, :]
    allowed = torch.cat([torch.ones(m, n_global, dtype=torch.bool, device=device), same], dim=1)
    return torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill(~allowed, float("-inf"))


def masked_reference_attention(
    q: Tensor, k: Tensor, v: Tensor, n_global: int, lengths: Sequence[int], attn_fn: AttentionFn = sdpa_attention
) -> Tensor:
    """Star-topology attention with an explicit ``(N, N)`` additive mask, one call."""
    mask = star_mask(n_global, lengths, dtype=q.dtype, device=q.device)
    return attn_fn(q, k, v, mask)


def isolated_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    n_global: int,
    lengths: Sequence[int],
    attn_fn: AttentionFn = sdpa_attention,
    isolate: bool = True,
    global_sees_identities: Tensor | None = None,
) -> Tensor:
    """Exact star-topology attention without an ``(N, N)`` mask.

    Args:
        q, k, v: ``(B, H, N, D)``, ``N = n_global + sum(lengths)``, RoPE applied.
        n_global: number of text + image tokens at the start of the sequence.
        lengths: token count of each identity, in sequence order (zeros allowed).
        attn_fn: attention kernel, see module docstring.
        isolate: False gives the paper's "all visible" ablation (one plain call).
        global_sees_identities: optional ``(B,)`` bool; rows marked False get global outputs
            computed over the global keys only (identity hidden, e.g. the uncond half of CFG).
    Returns:
        ``(B, N, H*D)``.
    """
    if sum(lengths) == 0:
        return attn_fn(q, k, v, None)
    all_see = global_sees_identities is None or bool(global_sees_identities.all())
    needs_id_mask = isolate and sum(1 for n in lengths if n > 0) > 1
    if all_see and not needs_id_mask:
        return attn_fn(q, k, v, None)
    out_global = _global_attention(q[:, :, :n_global], k, v, n_global, attn_fn, global_sees_identities)
    if needs_id_mask and splits_identity_queries(n_global, lengths):
        return torch.cat([out_global, *_per_identity_attention(q, k, v, n_global, lengths, attn_fn)], dim=1)
    mask = identity_query_mask(n_global, lengths, dtype=q.dtype, device=q.device) if needs_id_mask else None
    out_ids = attn_fn(q[:, :, n_global:], k, v, mask)
    return torch.cat([out_global, out_ids], dim=1)


def splits_identity_queries(n_global: int, lengths: Sequence[int]) -> bool:
    """True when per-identity calls beat one masked call (see :data:`SPLIT_WASTE_FRACTION`).

    The masked call scores ``M * (n_global + M)`` query-key pairs, of which
    ``M^2 - sum(m_i^2)`` are hidden.
    """
    m = sum(lengths)
    hidden = m * m - sum(n * n for n in lengths)
    return hidden > SPLIT_WASTE_FRACTION * m * (n_global + m)


def _per_identity_attention(
    q: Tensor, k: Tensor, v: Tensor, n_global: int, lengths: Sequence[int], attn_fn: AttentionFn
) -> list[Tensor]:
    """Identity ``i``'s queries over ``[global keys | identity i keys]``, one unmasked call each."""
    outs, start = [], n_global
    for length in lengths:
        own = slice(start, start + length)
        start += length
        if length == 0:
            continue
        keys = torch.cat([k[:, :, :n_global], k[:, :, own]], dim=2)
        values = torch.cat([v[:, :, :n_global], v[:, :, own]], dim=2)
        outs.append(attn_fn(q[:, :, own], keys, values, None))
    return outs


def _global_attention(
    q_global: Tensor, k: Tensor, v: Tensor, n_global: int, attn_fn: AttentionFn, sees: Tensor | None
) -> Tensor:
    """Global queries over all keys, or over global keys only for rows where ``sees`` is False."""
    if sees is None or bool(sees.all()):
        return attn_fn(q_global, k, v, None)
    if not bool(sees.any()):
        return attn_fn(q_global, k[:, :, :n_global], v[:, :, :n_global], None)
    rows_with = sees.nonzero().flatten()
    rows_without = (~sees).nonzero().flatten()
    out_with = attn_fn(q_global[rows_with], k[rows_with], v[rows_with], None)
    out_without = attn_fn(q_global[rows_without], k[rows_without, :, :n_global], v[rows_without, :, :n_global], None)
    out = out_with.new_empty((q_global.shape[0],) + tuple(out_with.shape[1:]))
    out[rows_with] = out_with
    out[rows_without] = out_without
    return out
