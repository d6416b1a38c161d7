"""Model files for the standalone pipeline: discovery in a ComfyUI models folder, loaders for the
FLUX VAE and text encoders, and the built-in tiny random-weight set (see ``docs/pipeline.md``)."""

from .discovery import ModelFiles, discover_models, file_role, require_complete
from .errors import ModelFileError
from .text_encoders import TextEncoders, TokenizerDirs, find_tokenizer_dirs, load_clip_text_model, load_t5_encoder
from .tiny import TinyRecognizer, ensure_tiny_models, tiny_cache_dir
from .vae import FLUX_VAE_CONFIG, FluxVAE, load_flux_vae

__all__ = [
    "FLUX_VAE_CONFIG",
    "FluxVAE",
    "ModelFileError",
    "ModelFiles",
    "TextEncoders",
    "TinyRecognizer",
    "TokenizerDirs",
    "discover_models",
    "ensure_tiny_models",
    "file_role",
    "find_tokenizer_dirs",
    "load_clip_text_model",
    "load_flux_vae",
    "load_t5_encoder",
    "require_complete",
    "tiny_cache_dir",
]
