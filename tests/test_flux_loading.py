"""Loading FLUX.1 weights: bare keys, ComfyUI-prefixed keys, and clear refusals."""

import pytest
import torch
from safetensors.torch import save_file

from anyphoto_core.flux import FluxLoadError, load_flux
from anyphoto_core.tokens import image_token_ids
from tests.tiny import TINY, tiny_flux


def _forward(model):
    g = torch.Generator().manual_seed(0)
    img = torch.randn(1, 6, 64, generator=g)
    return model(
        img,
        image_token_ids(2, 3)[None],
        torch.randn(1, 4, TINY.context_in_dim, generator=g),
        torch.zeros(1, 4, 3),
        torch.tensor([0.5]),
        torch.randn(1, TINY.vec_in_dim, generator=g),
        torch.tensor([3.5]),
    )


@pytest.mark.parametrize("prefix", ["", "model.diffusion_model."])
def test_both_key_styles_load_to_the_same_model(tmp_path, prefix):
    ref = tiny_flux(dtype=torch.float32)
    path = tmp_path / "flux.safetensors"
    save_file({prefix + k: v.contiguous() for k, v in ref.state_dict().items()}, path)
    loaded = load_flux(path, dtype=torch.float32)
    assert loaded.params == ref.params
    ref_sd, loaded_sd = ref.state_dict(), loaded.state_dict()
    assert ref_sd.keys() == loaded_sd.keys()
    for key, value in ref_sd.items():  # bit-identical weights
        assert torch.equal(loaded_sd[key], value), key
    # Same function; not bitwise, because mmap-loaded tensors can take another CPU kernel path.
    torch.testing.assert_close(_forward(loaded), _forward(ref), rtol=0, atol=1e-6)


def test_vae_file_is_refused_with_a_hint(tmp_path):
    path = tmp_path / "ae.safetensors"
    save_file({"encoder.conv_in.weight": torch.zeros(4, 3, 3, 3), "decoder.conv_out.bias": torch.zeros(3)}, path)
    with pytest.raises(FluxLoadError, match="not a FLUX.1 transformer.*encoder.conv_in"):
        load_flux(path)


def test_truncated_flux_is_refused(tmp_path):
    sd = {k: v.contiguous() for k, v in tiny_flux(dtype=torch.float32).state_dict().items()}
    del sd["final_layer.linear.bias"]
    path = tmp_path / "broken.safetensors"
    save_file(sd, path)
    with pytest.raises(FluxLoadError, match="missing.*final_layer.linear.bias"):
        load_flux(path)


def test_pickle_and_missing_files_are_refused(tmp_path):
    path = tmp_path / "flux1-dev.ckpt"
    path.write_bytes(b"PK\x03\x04 not safetensors")
    with pytest.raises(FluxLoadError, match="not a readable safetensors"):
        load_flux(path)
    with pytest.raises(FluxLoadError, match="not found"):
        load_flux(tmp_path / "nope.safetensors")


def test_wrong_shaped_tensor_is_refused(tmp_path):
    sd = {k: v.contiguous() for k, v in tiny_flux(dtype=torch.float32).state_dict().items()}
    sd["single_blocks.0.linear2.bias"] = torch.zeros(7)
    path = tmp_path / "odd.safetensors"
    save_file(sd, path)
    with pytest.raises(FluxLoadError, match=r"wrong shape \['single_blocks.0.linear2.bias'\]"):
        load_flux(path)
