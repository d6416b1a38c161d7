"""The AnyPhoto forward over the reference FLUX: invariants against stock FLUX."""

import pytest
import torch

from anyphoto_core.blocks import IdentityContext, double_block_forward, single_block_forward
from anyphoto_core.identity import IdentityInputs
from anyphoto_core.tokens import image_token_ids
from tests.tiny import TINY, tiny_adapter, tiny_flux

H_TOK, W_TOK, N_TXT = 4, 6, 5


def _inputs(batch=2, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    img = torch.randn(batch, H_TOK * W_TOK, 64, generator=g, dtype=dtype)
    img_ids = image_token_ids(H_TOK, W_TOK)[None].expand(batch, -1, -1)
    txt = torch.randn(batch, N_TXT, TINY.context_in_dim, generator=g, dtype=dtype)
    txt_ids = torch.zeros(batch, N_TXT, 3)
    t = torch.rand(batch, generator=g, dtype=dtype)
    y = torch.randn(batch, TINY.vec_in_dim, generator=g, dtype=dtype)
    guidance = torch.full((batch,), 3.5, dtype=dtype)
    return img, img_ids, txt, txt_ids, t, y, guidance


def _identities(adapter, lengths, seed=1, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    m = sum(lengths)
    cells = torch.randperm(H_TOK * W_TOK, generator=g)[:m].sort().values
    ids = image_token_ids(H_TOK, W_TOK, type_index=1.0)[cells]
    emb = torch.nn.functional.normalize(torch.randn(len(lengths), 512, generator=g), dim=-1)
    delta = adapter.modulation_offsets(emb).to(dtype)
    tokens = torch.randn(1, m, 64, generator=g, dtype=dtype)
    return IdentityInputs(tokens, ids, tuple(lengths), delta, (H_TOK, W_TOK), adapter.lora_delta)


@pytest.fixture(scope="module")
def model():
    return tiny_flux()


@pytest.fixture(scope="module")
def adapter():
    return tiny_adapter().double()


def test_zero_identities_equal_stock(model, adapter):
    args = _inputs()
    stock = model(*args)
    empty = IdentityInputs(
        torch.zeros(1, 0, 64, dtype=torch.float64),
        torch.zeros(0, 3),
        (0, 0),
        torch.zeros(2, TINY.hidden_size, dtype=torch.float64),
        (H_TOK, W_TOK),
        adapter.lora_delta,
    )
    out = model.forward_anyphoto(*args, empty)
    torch.testing.assert_close(out, stock, rtol=0, atol=0)


def test_hidden_identities_leave_text_and_image_exactly_stock(model, adapter):
    """Identities present (non-zero LoRA and offsets) but invisible to global queries."""
    args = _inputs()
    stock = model(*args)
    ids = _identities(adapter, [3, 1, 4])
    hidden = torch.tensor([False, False])
    out = model.forward_anyphoto(*args, ids, global_sees_identities=hidden)
    torch.testing.assert_close(out, stock, rtol=1e-9, atol=1e-9)


def test_visible_identities_change_the_image(model, adapter):
    args = _inputs()
    stock = model(*args)
    out = model.forward_anyphoto(*args, _identities(adapter, [3, 2]))
    assert torch.isfinite(out).all()
    assert (out - stock).abs().max() > 1e-3


def test_cfg_style_batch_only_cond_row_sees_identities(model, adapter):
    args = _inputs()
    stock = model(*args)
    sees = torch.tensor([False, True])  # [uncond, cond]
    out = model.forward_anyphoto(*args, _identities(adapter, [2, 3]), global_sees_identities=sees)
    torch.testing.assert_close(out[0], stock[0], rtol=1e-9, atol=1e-9)
    assert (out[1] - stock[1]).abs().max() > 1e-3


def _block_inputs(model, adapter, lengths, seed=3):
    g = torch.Generator().manual_seed(seed)
    m, n_img, c = sum(lengths), H_TOK * W_TOK, TINY.hidden_size
    img = torch.randn(1, n_img + m, c, generator=g, dtype=torch.float64)
    txt = torch.randn(1, N_TXT, c, generator=g, dtype=torch.float64)
    vec = torch.randn(1, c, generator=g, dtype=torch.float64)
    ids = torch.cat(
        [torch.zeros(1, N_TXT, 3), image_token_ids(H_TOK, W_TOK)[None], image_token_ids(H_TOK, W_TOK, 1.0)[:m][None]],
        dim=1,
    )
    pe = model.pe_embedder(ids)
    delta = torch.randn(1, len(lengths), c, generator=g, dtype=torch.float64)
    ctx = IdentityContext(lengths=lengths, id_vec=vec[:, None] + delta)
    return img, txt, vec, pe, ctx


def test_identity_outputs_do_not_depend_on_other_identities(model, adapter):
    """Within one block, identity 1's outputs ignore identity 2's tokens; global outputs do not."""
    lengths = (3, 4)
    img, txt, vec, pe, ctx = _block_inputs(model, adapter, lengths)
    n_img = H_TOK * W_TOK
    block = model.double_blocks[0]
    out_img, out_txt = double_block_forward(block, img, txt, vec, pe, ctx, "double_blocks.0")
    img2 = img.clone()
    img2[:, n_img + 3 :] += torch.randn_like(img2[:, n_img + 3 :])  # change identity 2's tokens
    out_img2, out_txt2 = double_block_forward(block, img2, txt, vec, pe, ctx, "double_blocks.0")
    torch.testing.assert_close(out_img2[:, n_img : n_img + 3], out_img[:, n_img : n_img + 3], rtol=0, atol=1e-12)
    assert (out_img2[:, :n_img] - out_img[:, :n_img]).abs().max() > 1e-4
    assert (out_txt2 - out_txt).abs().max() > 1e-4

    x = torch.cat([txt, img], dim=1)
    x2 = torch.cat([txt, img2], dim=1)
    single = model.single_blocks[0]
    s1 = single_block_forward(single, x, vec, pe, ctx, "single_blocks.0")
    s2 = single_block_forward(single, x2, vec, pe, ctx, "single_blocks.0")
    g = N_TXT + n_img
    torch.testing.assert_close(s2[:, g : g + 3], s1[:, g : g + 3], rtol=0, atol=1e-12)
    assert (s2[:, :g] - s1[:, :g]).abs().max() > 1e-4


def test_identity_modulation_and_lora_reach_only_identity_tokens(model, adapter):
    """Changing delta_c or LoRA changes identity rows; hidden from globals, image rows stay put."""
    lengths = (2, 3)
    img, txt, vec, pe, ctx = _block_inputs(model, adapter, lengths)
    ctx.global_sees_identities = torch.tensor([False])
    block = model.double_blocks[1]
    base_img, base_txt = double_block_forward(block, img, txt, vec, pe, ctx, "double_blocks.1")
    stock_img, stock_txt = block(img[:, : H_TOK * W_TOK], txt, vec, pe[:, :, : N_TXT + H_TOK * W_TOK])
    torch.testing.assert_close(base_img[:, : H_TOK * W_TOK], stock_img, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(base_txt, stock_txt, rtol=1e-10, atol=1e-10)
    ctx.id_vec = ctx.id_vec + 0.5
    moved_img, _ = double_block_forward(block, img, txt, vec, pe, ctx, "double_blocks.1")
    assert (moved_img[:, H_TOK * W_TOK :] - base_img[:, H_TOK * W_TOK :]).abs().max() > 1e-3
    torch.testing.assert_close(moved_img[:, : H_TOK * W_TOK], base_img[:, : H_TOK * W_TOK], rtol=0, atol=0)


def test_bf16_model_runs_with_fp32_ids(adapter):
    model = tiny_flux(dtype=torch.bfloat16)
    args = _inputs(dtype=torch.bfloat16)
    ids = _identities(adapter, [2, 2], dtype=torch.bfloat16)
    out = model.forward_anyphoto(*args, ids)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()


def test_gradient_checkpointing_gives_the_same_outputs_and_gradients(model):
    adapter = tiny_adapter().double()
    args = _inputs()
    results = []
    for checkpoint in (False, True):
        adapter.zero_grad()
        ids = _identities(adapter, [2, 3])  # the projector is part of the graph
        out = model.forward_anyphoto(*args, ids, checkpoint_blocks=checkpoint)
        out.square().sum().backward()
        grads = {k: p.grad.clone() for k, p in adapter.named_parameters() if p.grad is not None}
        results.append((out.detach(), grads))
    torch.testing.assert_close(results[1][0], results[0][0], rtol=0, atol=0)
    assert results[0][1].keys() == results[1][1].keys() and results[0][1]
    for key, grad in results[0][1].items():
        torch.testing.assert_close(results[1][1][key], grad, rtol=1e-10, atol=1e-12)
