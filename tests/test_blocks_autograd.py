"""The block forwards write identity rows in place; autograd must still give the true gradients.

Checked against central finite differences along random directions (FLUX's RMSNorm computes in
float32, so the step is 1e-3 and the tolerance 1e-3 relative).
"""

import torch

from anyphoto_core.blocks import IdentityContext, double_block_forward, single_block_forward
from anyphoto_core.flux import FluxParams
from anyphoto_core.tokens import image_token_ids
from tests.tiny import tiny_adapter, tiny_flux

PARAMS = FluxParams.tiny(hidden_size=32, num_heads=1, depth=1, depth_single_blocks=1, context_in_dim=8, vec_in_dim=8)
LENGTHS, N_TXT, H_TOK, W_TOK = (2, 1), 2, 2, 3


def test_gradients_match_finite_differences():
    model = tiny_flux(params=PARAMS)
    adapter = tiny_adapter(PARAMS, rank=2).double()
    g = torch.Generator().manual_seed(0)
    c, n_img, m = PARAMS.hidden_size, H_TOK * W_TOK, sum(LENGTHS)
    vec = torch.randn(1, c, generator=g, dtype=torch.float64)
    inputs = [
        torch.randn(1, n_img + m, c, generator=g, dtype=torch.float64),  # img + identity tokens
        torch.randn(1, N_TXT, c, generator=g, dtype=torch.float64),  # txt
        vec[:, None] + torch.randn(1, len(LENGTHS), c, generator=g, dtype=torch.float64),  # id_vec
    ]
    ids = torch.cat(
        [torch.zeros(1, N_TXT, 3), image_token_ids(H_TOK, W_TOK)[None], image_token_ids(H_TOK, W_TOK, 1.0)[:m][None]],
        dim=1,
    )
    pe = model.pe_embedder(ids).double()
    weights = torch.randn(1, N_TXT + n_img + m, c, generator=g, dtype=torch.float64)

    def loss(img, txt, id_vec):
        ctx = IdentityContext(lengths=LENGTHS, id_vec=id_vec, lora_delta=adapter.lora_delta)
        out_img, out_txt = double_block_forward(model.double_blocks[0], img, txt, vec, pe, ctx, "double_blocks.0")
        x = torch.cat([out_txt, out_img], dim=1)
        x = single_block_forward(model.single_blocks[0], x, vec, pe, ctx, "single_blocks.0")
        return (x * weights).sum()

    leaves = [t.clone().requires_grad_() for t in inputs]
    loss(*leaves).backward()
    eps = 1e-3
    for i, leaf in enumerate(leaves):
        direction = torch.randn(leaf.shape, generator=g, dtype=torch.float64)
        plus, minus = list(inputs), list(inputs)
        plus[i], minus[i] = inputs[i] + eps * direction, inputs[i] - eps * direction
        with torch.no_grad():
            numerical = (loss(*plus) - loss(*minus)) / (2 * eps)
        torch.testing.assert_close((leaf.grad * direction).sum(), numerical, rtol=1e-3, atol=1e-6)
