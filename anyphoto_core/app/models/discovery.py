"""Finding model files in a ComfyUI ``models`` folder.

Per role, the folders searched under the models dir (first match wins, ``*.safetensors`` sorted by
name) and how a file is identified (tensor names from the safetensors header, never the file name):

* FLUX transformer: ``diffusion_models/``, ``unet/``; key ``double_blocks.0.img_attn.norm.key_norm.scale``.
* VAE: ``vae/``; key ``encoder.down.0.block.0.conv1.weight`` (BFL) or its diffusers equivalent.
* CLIP-L: ``text_encoders/``, ``clip/``; keys ``text_model.encoder.layers.0...``.
* T5-XXL: ``text_encoders/``, ``clip/``; key ``encoder.block.0.layer.0.SelfAttention.q.weight``.
* adapter: ``anyphoto/``; metadata ``format = anyphoto-adapter``.
* face analysis: ``insightface/`` (``models/antelopev2/*.onnx``); the folder.

Explicit paths override discovery. A file given explicitly that is of the wrong kind is refused
by its loader with a message naming what it is and what to pick instead.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from safetensors import SafetensorError, safe_open

from .errors import ModelFileError

ROLE_FOLDERS = {
    "flux": ("diffusion_models", "unet"),
    "vae": ("vae",),
    "clip_l": ("text_encoders", "clip"),
    "t5": ("text_encoders", "clip"),
    "adapter": ("anyphoto",),
}
_SIGNATURES = {
    "flux": ("double_blocks.0.img_attn.norm.key_norm.scale",),
    "vae": ("encoder.down.0.block.0.conv1.weight", "encoder.down_blocks.0.resnets.0.conv1.weight"),
    "clip_l": ("text_model.encoder.layers.0.self_attn.q_proj.weight",),
    "t5": ("encoder.block.0.layer.0.SelfAttention.q.weight",),
}
ROLE_NAMES = {
    "flux": "FLUX.1-dev transformer",
    "vae": "FLUX VAE (ae.safetensors)",
    "clip_l": "CLIP-L text encoder",
    "t5": "T5-XXL text encoder",
    "adapter": "AnyPhoto adapter",
}


@dataclass(frozen=True)
class ModelFiles:
    """Paths of the model files of one run (None: not found / not given)."""

    flux: Path | None = None
    vae: Path | None = None
    clip_l: Path | None = None
    t5: Path | None = None
    adapter: Path | None = None
    insightface: Path | None = None

    def missing(self, roles=("flux", "vae", "clip_l", "t5")) -> list[str]:
        return [r for r in roles if getattr(self, r) is None]


def file_role(path: Path) -> str | None:
    """The role of a safetensors file from its header (tensor names / metadata), or None."""
    try:
        with safe_open(str(path), framework="pt") as f:
            keys, meta = list(f.keys()), f.metadata() or {}
    except (SafetensorError, OSError, ValueError):
        return None
    if meta.get("format") == "anyphoto-adapter":
        return "adapter"
    for role, signatures in _SIGNATURES.items():
        if any(k.endswith(sig) for k in keys for sig in signatures):
            return role
    return None


def find_role(models_dir: Path, role: str) -> Path | None:
    """First file of ``role`` in the role's folders under ``models_dir``."""
    for sub in ROLE_FOLDERS[role]:
        folder = models_dir / sub
        if folder.is_dir():
            for path in sorted(folder.rglob("*.safetensors")):
                if file_role(path) == role:
                    return path
    return None


def describe_folder(models_dir: Path, role: str) -> str:
    """What the role's folders hold, for error messages: ``name (kind)`` per file."""
    seen = []
    for sub in ROLE_FOLDERS[role]:
        folder = models_dir / sub
        for path in sorted(folder.rglob("*.safetensors")) if folder.is_dir() else []:
            kind = file_role(path)
            seen.append(f"{sub}/{path.relative_to(folder)} ({ROLE_NAMES.get(kind, 'unrecognized')})")
    return ", ".join(seen) or "nothing"


def discover_models(models_dir=None, **explicit) -> ModelFiles:
    """Model files from ``models_dir`` (a ComfyUI ``models`` folder), overridden by ``explicit`` paths
    (``flux=``, ``vae=``, ``clip_l=``, ``t5=``, ``adapter=``, ``insightface=``; None = discover)."""
    unknown = set(explicit) - set(ModelFiles.__dataclass_fields__)
    if unknown:
        raise TypeError(f"unknown model roles {sorted(unknown)}")
    files = ModelFiles()
    if models_dir is not None:
        root = Path(models_dir).expanduser()
        if not root.is_dir():
            raise ModelFileError(f"models folder {root} does not exist; pass --models with ComfyUI's models folder")
        found = {role: find_role(root, role) for role in ROLE_FOLDERS}
        face_root = root / "insightface"
        files = ModelFiles(**found, insightface=face_root if (face_root / "models").is_dir() else None)
    for role, path in explicit.items():
        if path is not None:
            path = Path(path).expanduser()
            if not path.exists():
                raise ModelFileError(f"{ROLE_NAMES.get(role, role)} file not found: {path}")
            files = replace(files, **{role: path})
    return files


def require_complete(files: ModelFiles, models_dir) -> None:
    """Raise :class:`ModelFileError` naming each missing file and the folder it belongs in."""
    missing = files.missing()
    if not missing:
        return
    root = Path(models_dir) if models_dir is not None else Path("<models>")
    parts = [f"{ROLE_NAMES[r]} -> {root / ROLE_FOLDERS[r][0]}/ (there: {describe_folder(root, r)})" for r in missing]
    raise ModelFileError("model files not found: " + "; ".join(parts))
