"""Which identity-query path ``isolated_attention`` takes, and that both equal the masked reference."""

import pytest
import torch

from anyphoto_core.attention import (
    isolated_attention,
    masked_reference_attention,
    sdpa_attention,
    splits_identity_queries,
)


def _qkv(n, seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 3, n, 8, generator=g, dtype=torch.float64) for _ in range(3)]


@pytest.mark.parametrize(
    "n_global,lengths,split",
    [
        (40, [3, 2, 4], False),  # small face blocks: one masked call (little of it hidden)
        (6, [10, 0, 12, 9], True),  # big blocks (unpruned canvases): per-identity calls
    ],
)
def test_path_choice_and_exactness(n_global, lengths, split):
    n = n_global + sum(lengths)
    calls = []

    def spy(q, k, v, mask):
        calls.append((q.shape[2], k.shape[2], None if mask is None else tuple(mask.shape)))
        return sdpa_attention(q, k, v, mask)

    q, k, v = _qkv(n, seed=n)
    out = isolated_attention(q, k, v, n_global, lengths, attn_fn=spy)
    torch.testing.assert_close(out, masked_reference_attention(q, k, v, n_global, lengths), rtol=1e-10, atol=1e-10)
    assert splits_identity_queries(n_global, lengths) is split
    assert calls[0] == (n_global, n, None)  # global queries: all keys, no mask
    if split:  # one unmasked call per non-empty identity over [global | own] keys
        assert calls[1:] == [(m, n_global + m, None) for m in lengths if m]
    else:  # one call for all identity queries with an (M, N) mask
        assert calls[1:] == [(sum(lengths), n, (sum(lengths), n))]
