"""The few ComfyUI services the nodes use, imported lazily so the pack imports without ComfyUI (CI)."""

from __future__ import annotations

import os

import numpy as np
import torch

MODEL_FOLDERS = ("anyphoto", "insightface")


def register_model_folders() -> None:
    """Register ``models/anyphoto`` and ``models/insightface`` with folder_paths, appending to entries
    that extra_model_paths.yaml already created instead of replacing them. No-op without ComfyUI."""
    try:
        import folder_paths
    except ImportError:
        return
    for name in MODEL_FOLDERS:
        path = os.path.join(folder_paths.models_dir, name)
        if name in folder_paths.folder_names_and_paths:
            folder_paths.add_model_folder_path(name, path)
        else:
            folder_paths.folder_names_and_paths[name] = ([path], set(folder_paths.supported_pt_extensions))


def model_folder_paths(name: str) -> list[str]:
    """Folders registered for ``name`` (empty without ComfyUI)."""
    try:
        import folder_paths
    except ImportError:
        return []
    return list(folder_paths.get_folder_paths(name)) if name in folder_paths.folder_names_and_paths else []


def safetensors_files(name: str) -> list[str]:
    """``.safetensors`` files of model folder ``name`` (empty without ComfyUI)."""
    try:
        import folder_paths
    except ImportError:
        return []
    if name not in folder_paths.folder_names_and_paths:
        return []
    return [f for f in folder_paths.get_filename_list(name) if f.lower().endswith(".safetensors")]


def input_directory() -> str:
    import folder_paths

    return folder_paths.get_input_directory()


def temp_directory() -> str:
    import folder_paths

    return folder_paths.get_temp_directory()


#: Channels of a FLUX.1 latent (``EmptySD3LatentImage`` makes the same zeros).
FLUX_LATENT_CHANNELS = 16


def empty_latent(width: int, height: int, batch: int = 1) -> torch.Tensor:
    """Zeros ``(batch, 16, height // 8, width // 8)`` on ComfyUI's intermediate device (CPU without ComfyUI)."""
    try:
        import comfy.model_management

        device = comfy.model_management.intermediate_device()
    except ImportError:
        device = "cpu"
    return torch.zeros(batch, FLUX_LATENT_CHANNELS, height // 8, width // 8, device=device)


class _NoProgress:
    def update(self, value=1):
        pass


def progress_bar(total: int):
    """``comfy.utils.ProgressBar(total)``, or a silent stand-in outside ComfyUI."""
    try:
        import comfy.utils
    except ImportError:
        return _NoProgress()
    return comfy.utils.ProgressBar(total)


def image_to_arrays(image: torch.Tensor) -> list[np.ndarray]:
    """ComfyUI IMAGE ``(B, H, W, C)`` float [0, 1] -> list of ``(H, W, 3)`` uint8 RGB."""
    arr = (image[..., :3].detach().cpu().float().clamp(0, 1).numpy() * 255.0).round().astype(np.uint8)
    return list(arr)


def arrays_to_image(arrays) -> torch.Tensor:
    """Same-size ``(H, W, 3)`` uint8 arrays -> ComfyUI IMAGE ``(B, H, W, 3)`` float32 [0, 1]."""
    return torch.from_numpy(np.stack([np.asarray(a) for a in arrays]).astype(np.float32) / 255.0)
