"""Identity-isolated attention: the fast path against the plain masked reference."""

import pytest
import torch

from anyphoto_core.attention import (
    isolated_attention,
    masked_reference_attention,
    sdpa_attention,
    star_mask,
)


def _qkv(batch, heads, n, dim, seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, heads, n, dim, generator=g, dtype=torch.float64) for _ in range(3)]


CASES = [
    (7, [3]),
    (10, [4, 2]),
    (12, [1, 5, 3]),
    (9, [2, 0, 4]),  # an identity pruned to zero tokens
    (16, [1, 1, 1, 1]),
    (5, [6, 2, 8, 3, 1, 4, 2, 2]),
]


@pytest.mark.parametrize("n_global,lengths", CASES)
def test_fast_equals_masked_reference(n_global, lengths):
    q, k, v = _qkv(2, 3, n_global + sum(lengths), 8, seed=n_global * 31 + len(lengths))
    fast = isolated_attention(q, k, v, n_global, lengths)
    ref = masked_reference_attention(q, k, v, n_global, lengths)
    torch.testing.assert_close(fast, ref, rtol=1e-10, atol=1e-10)


def test_star_mask_topology_is_the_papers():
    mask = star_mask(3, [2, 1])
    visible = mask == 0
    # global queries see everything
    assert visible[:3].all()
    # identity 1 (rows 3,4) sees global + itself, not identity 2 (col 5)
    assert visible[3:5, :5].all() and not visible[3:5, 5].any()
    # identity 2 (row 5) sees global + itself only
    assert visible[5, :3].all() and visible[5, 5] and not visible[5, 3:5].any()


def test_identity_output_independent_of_other_identities():
    n_global, lengths = 6, [3, 4]
    q, k, v = _qkv(1, 2, n_global + 7, 8, seed=3)
    base = isolated_attention(q, k, v, n_global, lengths)
    k2, v2 = k.clone(), v.clone()
    k2[:, :, 9:] += torch.randn_like(k2[:, :, 9:])  # perturb identity 2's keys/values
    v2[:, :, 9:] += torch.randn_like(v2[:, :, 9:])
    out = isolated_attention(q, k2, v2, n_global, lengths)
    torch.testing.assert_close(out[:, 6:9], base[:, 6:9], rtol=0, atol=1e-12)  # identity 1 unchanged
    assert (out[:, :6] - base[:, :6]).abs().max() > 1e-3  # global outputs see identity 2
    assert (out[:, 9:] - base[:, 9:]).abs().max() > 1e-3  # identity 2 sees itself


def test_all_visible_ablation_is_plain_attention():
    n_global, lengths = 5, [2, 3]
    q, k, v = _qkv(1, 2, 10, 8, seed=4)
    torch.testing.assert_close(isolated_attention(q, k, v, n_global, lengths, isolate=False), sdpa_attention(q, k, v))


def test_rows_hiding_identities_equal_attention_without_identity_tokens():
    n_global, lengths = 6, [2, 3]
    q, k, v = _qkv(2, 2, 11, 8, seed=5)
    sees = torch.tensor([True, False])
    out = isolated_attention(q, k, v, n_global, lengths, global_sees_identities=sees)
    no_ids = sdpa_attention(q[1:, :, :6], k[1:, :, :6], v[1:, :, :6])
    torch.testing.assert_close(out[1:, :6], no_ids)
    ref = masked_reference_attention(q, k, v, n_global, lengths)
    torch.testing.assert_close(out[:1], ref[:1])
    torch.testing.assert_close(out[1:, 6:], ref[1:, 6:])  # identity queries unaffected


def test_fast_path_never_builds_a_full_mask():
    n_global, lengths = 20, [3, 4, 5]
    n = n_global + sum(lengths)
    seen = []

    def spy(q, k, v, mask):
        seen.append(None if mask is None else tuple(mask.shape))
        return sdpa_attention(q, k, v, mask)

    q, k, v = _qkv(1, 2, n, 8, seed=6)
    isolated_attention(q, k, v, n_global, lengths, attn_fn=spy)
    assert seen[0] is None  # global queries: one unmasked call
    assert all(s is None or s[-2] < n for s in seen), seen
    assert (n, n) not in seen
