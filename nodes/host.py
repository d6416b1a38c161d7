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
