"""Adapter file: round trip, metadata, and a clear error for each kind of mismatch."""

import pytest
import torch
from safetensors.torch import load_file, save_file

from anyphoto_core.adapter import AdapterConfig, AdapterError, load_adapter, read_adapter_config
from anyphoto_core.flux import Flux, FluxParams
from tests.tiny import TINY, tiny_adapter


def test_round_trip_keeps_every_tensor_and_the_metadata(tmp_path):
    adapter = tiny_adapter()
    path = tmp_path / "a.safetensors"
    adapter.save(path)
    loaded = load_adapter(
        path, hidden_size=TINY.hidden_size, depth=TINY.depth, depth_single_blocks=TINY.depth_single_blocks
    )
    assert loaded.config == adapter.config
    for key, t in adapter.adapter_state_dict().items():
        torch.testing.assert_close(loaded.adapter_state_dict()[key], t, rtol=0, atol=0)
    emb = torch.randn(3, 512)
    torch.testing.assert_close(loaded.modulation_offsets(emb), adapter.modulation_offsets(emb))
    x = torch.randn(5, TINY.hidden_size)
    torch.testing.assert_close(
        loaded.lora_delta("double_blocks.1.img_attn.qkv", x), adapter.lora_delta("double_blocks.1.img_attn.qkv", x)
    )
    assert not (tmp_path / "a.safetensors.tmp").exists()


def test_fresh_adapter_is_a_no_op_and_targets_are_the_image_path():
    adapter = tiny_adapter(nonzero=False)
    assert torch.count_nonzero(adapter.modulation_offsets(torch.randn(2, 512))) == 0
    assert torch.count_nonzero(adapter.lora_delta("single_blocks.0.linear1", torch.randn(3, TINY.hidden_size))) == 0
    assert set(adapter.target_paths) == {
        *(
            f"double_blocks.{i}.{t}"
            for i in range(2)
            for t in ("img_attn.qkv", "img_attn.proj", "img_mlp.0", "img_mlp.2")
        ),
        *(f"single_blocks.{i}.{t}" for i in range(2) for t in ("linear1", "linear2")),
    }
    assert adapter.lora_delta("double_blocks.0.txt_attn.qkv", torch.randn(1, 64)) is None


def test_config_for_flux_fits_the_model_linears():
    """``AdapterConfig.for_flux``: a LoRA target for the image-path linears of every block of a FLUX with those
    params (3 double, 2 single blocks), each with that linear's (in, out) features."""
    params = FluxParams.tiny(hidden_size=64, depth=3, depth_single_blocks=2)
    model = Flux(params)
    shapes = AdapterConfig.for_flux(params, rank=2).target_shapes()
    blocks = {".".join(path.split(".")[:2]) for path in shapes}
    assert blocks == {f"double_blocks.{i}" for i in range(3)} | {f"single_blocks.{i}" for i in range(2)}
    for path, features in shapes.items():
        linear = model.get_submodule(path)
        assert (linear.in_features, linear.out_features) == features, path


def test_wrong_hidden_size_is_named(tmp_path):
    path = tmp_path / "a.safetensors"
    tiny_adapter().save(path)
    with pytest.raises(AdapterError, match="hidden_size=64.*hidden_size=3072"):
        load_adapter(path, hidden_size=3072)


def test_missing_keys_are_named(tmp_path):
    path = tmp_path / "a.safetensors"
    tiny_adapter().save(path)
    tensors = load_file(path)
    meta = read_adapter_config(path).to_metadata()
    del tensors["lora.single_blocks.1.linear2.lora_A.weight"]
    save_file(tensors, path, metadata=meta)
    with pytest.raises(AdapterError, match="lacks 1 tensors.*single_blocks.1.linear2"):
        load_adapter(path)


def test_wrong_rank_is_named(tmp_path):
    path = tmp_path / "a.safetensors"
    tiny_adapter(rank=4).save(path)
    tensors = load_file(path)
    meta = read_adapter_config(path).to_metadata()
    meta["rank"] = "8"
    save_file(tensors, path, metadata=meta)
    with pytest.raises(AdapterError, match="rank 8"):
        load_adapter(path)


def test_not_safetensors_is_refused(tmp_path):
    path = tmp_path / "a.safetensors"
    path.write_bytes(b"\x80\x04pickle? no thanks" * 10)
    with pytest.raises(AdapterError, match="not a readable safetensors"):
        load_adapter(path)
    with pytest.raises(AdapterError, match="not found"):
        load_adapter(tmp_path / "missing.safetensors")


def test_foreign_safetensors_is_refused(tmp_path):
    path = tmp_path / "lora.safetensors"
    save_file({"x": torch.zeros(2)}, path)
    with pytest.raises(AdapterError, match="not an AnyPhoto adapter"):
        load_adapter(path)


def test_wrong_embedding_size_is_named():
    with pytest.raises(AdapterError, match="expects 512"):
        tiny_adapter().modulation_offsets(torch.randn(2, 128))


@pytest.mark.parametrize("poison", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_at_load(tmp_path, poison):
    path = tmp_path / "a.safetensors"
    tiny_adapter().save(path)
    tensors = load_file(path)
    tensors["lora.double_blocks.1.img_mlp.0.lora_B.weight"][3, 0] = poison
    save_file(tensors, path, metadata=read_adapter_config(path).to_metadata())
    with pytest.raises(AdapterError, match=r"tensor lora\.double_blocks\.1\.img_mlp\.0\.lora_B\.weight contains NaN"):
        load_adapter(path)


def test_non_finite_metadata_number_is_refused(tmp_path):
    path = tmp_path / "a.safetensors"
    tiny_adapter().save(path)
    meta = read_adapter_config(path).to_metadata()
    meta["alpha"] = "nan"
    save_file(load_file(path), path, metadata=meta)
    with pytest.raises(AdapterError, match="metadata alpha='nan' is not a finite number"):
        read_adapter_config(path)
