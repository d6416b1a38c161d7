"""Tests that pin the method against references written independently of ``blocks.py``.

* Per-token modulation: every row takes shift/scale/gate from *its own* conditioning (``vec`` for
  text/image rows, ``vec + delta_i`` for identity i's rows), computed here one row at a time by
  calling the block's modulation module on a per-row conditioning tensor; the rest of the block
  (LoRA on identity rows only, star attention with an explicit mask, RoPE) is spelled out naively.
* Exact scaling of the identity inputs by the identity weights and the LoRA strength.
"""

import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from anyphoto_core.blocks import IdentityContext, double_block_forward, single_block_forward
from anyphoto_core.conditioning import identity_inputs
from anyphoto_core.identity import IdentityInputs
from anyphoto_core.tokens import IdentityTokens, image_token_ids
from tests.tiny import TINY, tiny_adapter, tiny_flux

H_TOK, W_TOK, N_TXT = 3, 4, 5
LENGTHS = (2, 3)


def _rope(x, pe):
    """FLUX RoPE, written out: pairs (x0, x1) of each head dim rotated by the 2x2 matrices in ``pe``
    (in ``pe``'s float32, as FLUX does)."""
    pairs = x.to(pe.dtype).reshape(*x.shape[:-1], -1, 2)
    out = (
        pe[..., 0, 0] * pairs[..., 0] + pe[..., 0, 1] * pairs[..., 1],
        pe[..., 1, 0] * pairs[..., 0] + pe[..., 1, 1] * pairs[..., 1],
    )
    return torch.stack(out, dim=-1).reshape(x.shape).to(x.dtype)


def _star_mask(n_global, lengths):
    """(N, N) bool: global queries see every key; identity i's queries see global keys and their own."""
    n = n_global + sum(lengths)
    allowed = torch.zeros(n, n, dtype=torch.bool)
    allowed[:n_global] = True
    start = n_global
    for length in lengths:
        allowed[start : start + length, :n_global] = True
        allowed[start : start + length, start : start + length] = True
        start += length
    return allowed


def _attention(q, k, v, mask):
    """Plain masked softmax attention: (B, H, N, D) -> (B, N, H*D)."""
    scores = (q @ k.transpose(-1, -2)) / q.shape[-1] ** 0.5
    out = scores.masked_fill(~mask, float("-inf")).softmax(-1) @ v
    return out.transpose(1, 2).reshape(q.shape[0], q.shape[2], -1)


def _heads(x, heads):
    b, n, _ = x.shape
    return x.view(b, n, 3, heads, -1).permute(2, 0, 3, 1, 4)


def _row_conditioning(vec, id_vec, n_first, lengths):
    """(B, n_first + M, C): ``vec`` for the first rows, ``id_vec[:, i]`` for each row of identity i."""
    rows = [vec[:, None, :].expand(-1, n_first, -1)]
    rows += [id_vec[:, i : i + 1].expand(-1, length, -1) for i, length in enumerate(lengths)]
    return torch.cat(rows, dim=1)


def _with_lora(linear, x, n_first, lora, path):
    y = linear(x)
    delta = torch.zeros_like(y)
    delta[:, n_first:] = lora(path, x[:, n_first:])
    return y + delta


def naive_double(block, img, txt, vec, pe, lengths, id_vec, lora, prefix):
    n_txt, n_img = txt.shape[1], img.shape[1] - sum(lengths)
    m1, m2 = block.img_mod(_row_conditioning(vec, id_vec, n_img, lengths))  # per-row factors (B, N, C)
    t1, t2 = block.txt_mod(vec)
    x = (1 + m1.scale) * block.img_norm1(img) + m1.shift
    iq, ik, iv = _heads(_with_lora(block.img_attn.qkv, x, n_img, lora, f"{prefix}.img_attn.qkv"), block.num_heads)
    iq, ik = block.img_attn.norm(iq, ik, iv)
    tq, tk, tv = _heads(block.txt_attn.qkv((1 + t1.scale) * block.txt_norm1(txt) + t1.shift), block.num_heads)
    tq, tk = block.txt_attn.norm(tq, tk, tv)
    q, k = _rope(torch.cat([tq, iq], 2), pe), _rope(torch.cat([tk, ik], 2), pe)
    attn = _attention(q, k, torch.cat([tv, iv], 2), _star_mask(n_txt + n_img, lengths))
    t_attn, i_attn = attn[:, :n_txt], attn[:, n_txt:]
    img = img + m1.gate * _with_lora(block.img_attn.proj, i_attn, n_img, lora, f"{prefix}.img_attn.proj")
    x2 = (1 + m2.scale) * block.img_norm2(img) + m2.shift
    hidden = block.img_mlp[1](_with_lora(block.img_mlp[0], x2, n_img, lora, f"{prefix}.img_mlp.0"))
    img = img + m2.gate * _with_lora(block.img_mlp[2], hidden, n_img, lora, f"{prefix}.img_mlp.2")
    txt = txt + t1.gate * block.txt_attn.proj(t_attn)
    txt = txt + t2.gate * block.txt_mlp((1 + t2.scale) * block.txt_norm2(txt) + t2.shift)
    return img, txt


def naive_single(block, x, vec, pe, lengths, id_vec, lora, prefix):
    n_global, c = x.shape[1] - sum(lengths), x.shape[-1]
    (mod, _) = block.modulation(_row_conditioning(vec, id_vec, n_global, lengths))
    x_mod = (1 + mod.scale) * block.pre_norm(x) + mod.shift
    lin1 = _with_lora(block.linear1, x_mod, n_global, lora, f"{prefix}.linear1")
    q, k, v = _heads(lin1[..., : 3 * c], block.num_heads)
    q, k = block.norm(q, k, v)
    attn = _attention(_rope(q, pe), _rope(k, pe), v, _star_mask(n_global, lengths))
    lin2_in = torch.cat([attn, block.mlp_act(lin1[..., 3 * c :])], dim=2)
    return x + mod.gate * _with_lora(block.linear2, lin2_in, n_global, lora, f"{prefix}.linear2")


@pytest.fixture(scope="module")
def setup():
    model, adapter = tiny_flux(), tiny_adapter().double()
    g = torch.Generator().manual_seed(3)
    m, n_img, c = sum(LENGTHS), H_TOK * W_TOK, TINY.hidden_size
    img = torch.randn(2, n_img + m, c, generator=g, dtype=torch.float64)
    txt = torch.randn(2, N_TXT, c, generator=g, dtype=torch.float64)
    vec = torch.randn(2, c, generator=g, dtype=torch.float64)
    id_vec = vec[:, None] + torch.randn(1, len(LENGTHS), c, generator=g, dtype=torch.float64)  # vec + delta_i
    ids = torch.cat([torch.zeros(N_TXT, 3), image_token_ids(H_TOK, W_TOK), image_token_ids(H_TOK, W_TOK, 1.0)[:m]])
    pe = model.pe_embedder(ids[None].expand(2, -1, -1))
    ctx = IdentityContext(lengths=LENGTHS, id_vec=id_vec, lora_delta=adapter.lora_delta)
    return model, adapter, img, txt, vec, id_vec, pe, ctx


def test_double_block_rows_use_their_own_modulation(setup):
    model, adapter, img, txt, vec, id_vec, pe, ctx = setup
    block = model.double_blocks[1]
    out_img, out_txt = double_block_forward(block, img, txt, vec, pe, ctx, "double_blocks.1")
    ref_img, ref_txt = naive_double(block, img, txt, vec, pe, LENGTHS, id_vec, adapter.lora_delta, "double_blocks.1")
    torch.testing.assert_close(out_img, ref_img, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(out_txt, ref_txt, rtol=1e-10, atol=1e-10)


def test_single_block_rows_use_their_own_modulation(setup):
    model, adapter, img, txt, vec, id_vec, pe, ctx = setup
    block = model.single_blocks[0]
    x = torch.cat([txt, img], dim=1)
    out = single_block_forward(block, x, vec, pe, ctx, "single_blocks.0")
    ref = naive_single(block, x, vec, pe, LENGTHS, id_vec, adapter.lora_delta, "single_blocks.0")
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)


def _tokens(count, seed):
    g = torch.Generator().manual_seed(seed)
    index = torch.randperm(H_TOK * W_TOK, generator=g)[:count].sort().values
    ids = image_token_ids(H_TOK, W_TOK, 1.0)[index]
    return IdentityTokens(torch.randn(1, count, 64, generator=g), ids, index, (H_TOK, W_TOK))


def test_identity_weights_and_lora_strength_scale_exactly():
    adapter = tiny_adapter()
    tokens = [_tokens(2, 0), _tokens(3, 1)]
    emb = F.normalize(torch.randn(2, 512, generator=torch.Generator().manual_seed(2)), dim=-1)
    with torch.no_grad():
        inputs = identity_inputs(adapter, tokens, emb, weights=[0.5, 2.0], lora_strength=0.3)
        offsets = adapter.modulation_offsets(emb).float()
    torch.testing.assert_close(inputs.delta, offsets * torch.tensor([[0.5], [2.0]]), rtol=0, atol=0)
    assert inputs.lengths == (2, 3)
    torch.testing.assert_close(inputs.tokens, torch.cat([tokens[0].tokens, tokens[1].tokens], 1), rtol=0, atol=0)
    for path in ("double_blocks.0.img_attn.qkv", "single_blocks.1.linear2"):
        x_in = torch.randn(4, TINY.hidden_size + (TINY.mlp_hidden_dim if path.endswith("linear2") else 0))
        with torch.no_grad():
            torch.testing.assert_close(
                inputs.lora_delta(path, x_in), 0.3 * adapter.lora_delta(path, x_in), rtol=0, atol=0
            )
    assert identity_inputs(adapter, tokens, emb, lora_strength=0.0).lora_delta is None
    vec = torch.randn(3, TINY.hidden_size)
    ctx = inputs.context(vec)
    torch.testing.assert_close(ctx.id_vec, vec[:, None] + inputs.delta[None], rtol=0, atol=0)
    assert ctx.lora_delta is inputs.lora_delta and ctx.lengths == (2, 3)


def test_identity_inputs_move_and_keep_fp32_ids():
    inputs = IdentityInputs.from_tokens([_tokens(2, 0)], torch.randn(1, TINY.hidden_size, dtype=torch.float64))
    half = inputs.to(dtype=torch.bfloat16)
    assert half.tokens.dtype == half.delta.dtype == torch.bfloat16 and half.ids.dtype == torch.float32
    img, img_ids = half.append_to_image(
        torch.zeros(3, 5, 8, dtype=torch.bfloat16), torch.zeros(3, 5, 3), torch.nn.Linear(64, 8).bfloat16()
    )
    assert img.shape == (3, 7, 8) and img_ids.shape == (3, 7, 3) and img_ids.dtype == torch.float32
    torch.testing.assert_close(img_ids[:, 5:], inputs.ids[None].expand(3, -1, -1), rtol=0, atol=0)
