"""Model discovery in a fake ComfyUI models tree (files made here) and refusal of wrong files."""

import pytest
import torch
from safetensors.torch import save_file

from anyphoto_core.app.models import ModelFileError, discover_models, load_flux_vae, require_complete
from anyphoto_core.app.models.tiny import ensure_tiny_models
from anyphoto_core.flux import FluxLoadError, load_flux


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return ensure_tiny_models(tmp_path_factory.mktemp("tiny"))


def _tree(root, tiny):
    for sub, name, src in [
        ("diffusion_models", "flux1-dev.safetensors", "flux"),
        ("vae", "ae.safetensors", "vae"),
        ("text_encoders", "clip_l.safetensors", "clip"),
        ("text_encoders", "t5xxl.safetensors", "t5"),
        ("anyphoto", "anyphoto.safetensors", "adapter"),
    ]:
        (root / sub).mkdir(parents=True, exist_ok=True)
        (root / sub / name).write_bytes((tiny / f"{src}.safetensors").read_bytes())
    (root / "text_encoders" / "notes.safetensors").parent.mkdir(exist_ok=True)
    save_file({"foo": torch.zeros(1)}, str(root / "text_encoders" / "aaa_unrelated.safetensors"))


def test_finds_every_role_by_content(tmp_path, tiny):
    _tree(tmp_path, tiny)
    files = discover_models(tmp_path)
    assert files.flux.name == "flux1-dev.safetensors" and files.vae.name == "ae.safetensors"
    assert files.clip_l.name == "clip_l.safetensors" and files.t5.name == "t5xxl.safetensors"
    assert files.adapter.name == "anyphoto.safetensors" and files.missing() == []


def test_vae_in_the_transformer_folder_is_reported(tmp_path, tiny):
    _tree(tmp_path, tiny)
    (tmp_path / "diffusion_models" / "flux1-dev.safetensors").unlink()
    (tmp_path / "diffusion_models" / "flux1-dev.safetensors").write_bytes((tiny / "vae.safetensors").read_bytes())
    files = discover_models(tmp_path)
    with pytest.raises(ModelFileError, match=r"FLUX.1-dev transformer .*flux1-dev.safetensors \(FLUX VAE"):
        require_complete(files, tmp_path)


def test_wrong_explicit_files_are_refused(tiny):
    with pytest.raises(FluxLoadError, match="not a FLUX.1 transformer"):
        load_flux(tiny / "vae.safetensors")
    with pytest.raises(ModelFileError, match="is not a VAE"):
        load_flux_vae(tiny / "flux.safetensors")
    with pytest.raises(ModelFileError, match="does not exist"):
        discover_models("/nonexistent/models")
