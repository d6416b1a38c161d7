"""AnyPhoto on a GGUF-quantised FLUX loaded through the ComfyUI-GGUF custom nodes. Needs COMFYUI_PATH and
ComfyUI-GGUF (see gguf_support.py); skipped with the reason otherwise.

ComfyUI-GGUF keeps block-quantised weights (``GGMLTensor``) in ``GGMLOps`` layers that dequantise them inside
``cast_bias_weight`` on every call, and applies a user LoRA there too (``GGUFModelPatcher`` hangs the patches on
the quantised tensor). A pack that read a raw ``.weight`` would multiply by quantised bytes.
"""

import pytest
import torch

from integration import comfy_harness, gguf_support
from integration.test_nodes_comfy import _apply
from integration.test_nodes_compat import _loaded_call, _user_lora, check_anyphoto_on_cast_weights


@pytest.fixture(scope="module")
def gguf_pack(comfy):
    if gguf_support.gguf_nodes_path() is None:
        pytest.skip(gguf_support.GGUF_HINT)
    return gguf_support.import_gguf_nodes()


@pytest.fixture(scope="module")
def gguf_base(gguf_pack, tmp_path_factory):
    """The tiny FLUX of the other integration tests (seed 0), written as Q8_0 GGUF and loaded back."""
    path = tmp_path_factory.mktemp("gguf") / "tiny_flux-Q8_0.gguf"
    full = comfy_harness.build_tiny_flux(seed=0)
    types = gguf_support.write_flux_gguf(full.model.diffusion_model.state_dict(), path)
    assert types["double_blocks.0.img_attn.qkv.weight"] == "Q8_0" and types["final_layer.linear.bias"] == "F32"
    return gguf_support.load_flux_gguf(path)


def test_anyphoto_on_gguf_quantised_flux(gguf_pack, gguf_base, monkeypatch):
    """Q8_0 weights dequantised per call: :func:`check_anyphoto_on_cast_weights` through
    ``GGMLLayer.cast_bias_weight``; the patched clone keeps ComfyUI-GGUF's patcher."""
    qkv = gguf_base.model.diffusion_model.double_blocks[0].img_attn.qkv
    assert isinstance(qkv, gguf_pack.ops.GGMLLayer) and qkv.weight.tensor_type.name == "Q8_0"
    patched = check_anyphoto_on_cast_weights(gguf_base, gguf_pack.ops.GGMLLayer, monkeypatch)
    assert isinstance(patched, gguf_pack.nodes.GGUFModelPatcher)


def test_user_lora_on_gguf_is_applied_inside_anyphoto_blocks(gguf_base):
    """A LoRA on the GGUF model (patches dequantised per call by ComfyUI-GGUF): AnyPhoto's uncond rows equal
    the LoRA'd GGUF model, which differs from the plain GGUF model; the base keeps no patch afterwards."""
    snapshot = comfy_harness.weight_bytes(gguf_base)
    lora = _user_lora(gguf_base)
    patched = _apply(lora, 2)
    plain = _loaded_call(gguf_base, with_anyphoto=False)
    ref = _loaded_call(lora, with_anyphoto=False)
    out = _loaded_call(patched, with_anyphoto=True)
    assert (ref - plain).abs().max() > 1e-3
    torch.testing.assert_close(out[0], ref[0], rtol=1e-5, atol=1e-5)
    assert (out[1] - ref[1]).abs().max() > 1e-4
    comfy_harness.assert_weights_unchanged(gguf_base, snapshot)
