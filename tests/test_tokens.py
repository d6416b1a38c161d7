"""Location-aligned token pruning: packing, coverage rules, kept tokens and their RoPE ids."""

import numpy as np
import pytest
import torch

from anyphoto_core.tokens import (
    image_token_ids,
    pack_latent,
    prune_canvas_tokens,
    token_keep_mask,
    unpack_tokens,
)


def _reference_pack(latent):
    """Loop-based FLUX packing: token (r, c) holds channels c, then the 2x2 patch row-major."""
    b, ch, h, w = latent.shape
    out = torch.empty(b, (h // 2) * (w // 2), ch * 4, dtype=latent.dtype)
    for r in range(h // 2):
        for c in range(w // 2):
            patch = latent[:, :, 2 * r : 2 * r + 2, 2 * c : 2 * c + 2]  # (b, ch, 2, 2)
            out[:, r * (w // 2) + c] = patch.reshape(b, ch * 4)
    return out


def test_pack_matches_flux_layout_and_round_trips():
    latent = torch.randn(2, 16, 6, 10)
    packed = pack_latent(latent)
    torch.testing.assert_close(packed, _reference_pack(latent), rtol=0, atol=0)
    torch.testing.assert_close(unpack_tokens(packed, 3, 5), latent, rtol=0, atol=0)


def test_odd_latent_is_padded_like_flux():
    latent = torch.randn(1, 16, 5, 7)
    packed = pack_latent(latent)
    assert packed.shape == (1, 3 * 4, 64)
    padded = torch.nn.functional.pad(latent, (0, 1, 0, 1))
    torch.testing.assert_close(packed, _reference_pack(padded))


def test_image_ids_are_row_major_fp32():
    ids = image_token_ids(3, 4, type_index=1.0)
    assert ids.dtype == torch.float32 and ids.shape == (12, 3)
    for r in range(3):
        for c in range(4):
            assert ids[r * 4 + c].tolist() == [1.0, float(r), float(c)]


def test_coverage_rules():
    mask = np.zeros((32, 48), bool)
    mask[0:16, 0:16] = True  # token (0,0) fully covered
    mask[0:8, 16:32] = True  # token (0,1) half covered
    mask[20, 40] = True  # token (1,2) one pixel
    assert token_keep_mask(mask, "all").nonzero() == (np.array([0]), np.array([0]))
    np.testing.assert_array_equal(np.argwhere(token_keep_mask(mask, "majority")), [[0, 0], [0, 1]])
    np.testing.assert_array_equal(np.argwhere(token_keep_mask(mask, "any")), [[0, 0], [0, 1], [1, 2]])
    with pytest.raises(ValueError, match="coverage rule"):
        token_keep_mask(mask, "most")


def test_pruning_keeps_exactly_covered_tokens_in_row_major_order():
    h_px, w_px = 96, 128  # latent 12x16, token grid 6x8
    mask = np.zeros((h_px, w_px), bool)
    mask[16:48, 32:80] = True  # token rows 1-2, cols 2-4
    latent = torch.randn(2, 16, h_px // 8, w_px // 8)
    keep = token_keep_mask(mask)
    ident = prune_canvas_tokens(latent, keep, type_index=1.0)
    expected_cells = [(r, c) for r in (1, 2) for c in (2, 3, 4)]
    assert ident.index.tolist() == [r * 8 + c for r, c in expected_cells]
    packed = pack_latent(latent)
    torch.testing.assert_close(ident.tokens, packed[:, ident.index])
    img_ids = image_token_ids(6, 8)
    torch.testing.assert_close(ident.ids[:, 1:], img_ids[ident.index, 1:])  # same (row, col) as image
    assert (ident.ids[:, 0] == 1.0).all() and ident.ids.dtype == torch.float32


def test_ids_stay_fp32_for_bf16_latents():
    latent = torch.randn(1, 16, 8, 8, dtype=torch.bfloat16)
    ident = prune_canvas_tokens(latent, np.ones((4, 4), bool))
    assert ident.ids.dtype == torch.float32 and ident.tokens.dtype == torch.bfloat16
    shifted = ident.ids + torch.tensor([0.0, 37.3, 63.6])  # fractional rows/cols survive
    assert shifted[0, 1].item() == pytest.approx(37.3, abs=1e-5)


def test_mismatched_mask_is_refused():
    with pytest.raises(ValueError, match="token grid"):
        prune_canvas_tokens(torch.randn(1, 16, 8, 8), np.ones((3, 4), bool))
