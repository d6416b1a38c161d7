"""A tiny FLUX quantised to GGUF and loaded through the ComfyUI-GGUF custom nodes (test-only).

ComfyUI-GGUF (github: city96/ComfyUI-GGUF) is never part of this repository: :func:`gguf_nodes_path` finds a
checkout named by ``COMFYUI_GGUF_PATH`` or at ``$COMFYUI_PATH/custom_nodes/ComfyUI-GGUF`` (prepare it with
``GGUF_SOURCE=... scripts/setup_comfyui.sh``), and :func:`import_gguf_nodes` imports it as a package the way
ComfyUI does. The file is written with the ``gguf`` package's own writer and quantiser, with the tensor
rules of ComfyUI-GGUF's ``tools/convert.py`` (1-D and small tensors F32) but Q8_0 instead of F16 for the
large matrices, so the weights really are block-quantised. It is loaded with ComfyUI-GGUF's
``gguf_sd_loader`` (``GGMLTensor`` weights), ``GGMLOps`` and ``GGUFModelPatcher``, i.e. what
``UnetLoaderGGUF.load_unet`` does, except that the tiny model is built by the bypass route of
:mod:`tiny_flux_pack.tiny_flux` (ComfyUI's model detection only knows full-size FLUX).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from integration import comfy_harness

PACKAGE = "comfyui_gguf_under_test"
GGUF_HINT = (
    "needs the ComfyUI-GGUF custom nodes: set COMFYUI_GGUF_PATH to a checkout of github.com/city96/ComfyUI-GGUF, "
    "or run GGUF_SOURCE=<checkout or bare git dir> scripts/setup_comfyui.sh to put it in "
    "$COMFYUI_PATH/custom_nodes/ComfyUI-GGUF; and the gguf package (pip install -r requirements-dev.txt)"
)
#: Tensors with at most this many elements stay F32, as in ComfyUI-GGUF's tools/convert.py.
QUANTIZATION_THRESHOLD = 1024


def gguf_nodes_path() -> Path | None:
    """The ComfyUI-GGUF checkout to test with, or ``None`` when there is none (or ``gguf`` is missing)."""
    if importlib.util.find_spec("gguf") is None:
        return None
    named = os.environ.get("COMFYUI_GGUF_PATH")
    candidates = [Path(named)] if named else []
    if os.environ.get("COMFYUI_PATH"):
        candidates.append(Path(os.environ["COMFYUI_PATH"]) / "custom_nodes" / "ComfyUI-GGUF")
    for path in candidates:
        if (path / "nodes.py").is_file() and (path / "loader.py").is_file():
            return path.resolve()
    return None


def import_gguf_nodes():
    """ComfyUI-GGUF as a package (``nodes``, ``loader``, ``ops`` submodules), imported once per process."""
    if PACKAGE in sys.modules:
        return sys.modules[PACKAGE]
    comfy_harness.import_comfy()
    folder = gguf_nodes_path()
    if folder is None:
        raise RuntimeError(GGUF_HINT)
    spec = importlib.util.spec_from_file_location(
        PACKAGE, folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = module
    spec.loader.exec_module(module)
    return module


def write_flux_gguf(state_dict: dict, path: Path, qtype_name: str = "Q8_0") -> dict[str, str]:
    """Write a FLUX ``state_dict`` (fp32 tensors, bare BFL keys) as a GGUF file of architecture ``flux``.

    Matrices above :data:`QUANTIZATION_THRESHOLD` elements are quantised to ``qtype_name``; the rest is F32.
    Returns ``{key: quantisation type name}``.
    """
    import gguf

    qtype = gguf.GGMLQuantizationType[qtype_name]
    writer = gguf.GGUFWriter(path=None, arch="flux")
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    types = {}
    for key, tensor in state_dict.items():
        data = tensor.detach().float().numpy()
        kind = qtype if data.ndim > 1 and data.size > QUANTIZATION_THRESHOLD else gguf.GGMLQuantizationType.F32
        writer.add_tensor(key, gguf.quants.quantize(data, kind), raw_dtype=kind)
        types[key] = kind.name
    writer.write_header_to_file(path=str(path))
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return types


def load_flux_gguf(path: Path, **config):
    """Load a tiny FLUX GGUF file as ComfyUI-GGUF's UnetLoaderGGUF would: a ``GGUFModelPatcher`` whose linears
    are ``GGMLOps.Linear`` holding ``GGMLTensor`` weights (dequantised per call). ``config``: the tiny model's
    shape, see ``tiny_flux.tiny_flux_config``."""
    import comfy.model_management as mm
    import comfy.supported_models
    import torch

    from integration.tiny_flux_pack import tiny_flux

    package = import_gguf_nodes()
    ops = package.nodes.GGMLOps()
    ops.Linear.dequant_dtype = ops.Linear.patch_dtype = None  # the loader node's "default"
    model_config = comfy.supported_models.Flux(tiny_flux.tiny_flux_config(**config))
    model_config.set_inference_dtype(torch.float32, None)
    model_config.custom_operations = ops
    state_dict = package.loader.gguf_sd_loader(str(path))
    base = model_config.get_model(state_dict, "")
    base.load_model_weights(state_dict, "")
    patcher = comfy.model_patcher.ModelPatcher(
        base, load_device=mm.get_torch_device(), offload_device=mm.unet_offload_device()
    )
    return package.nodes.GGUFModelPatcher.clone(patcher)
