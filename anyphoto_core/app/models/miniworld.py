"""The MiniWorld model set: small models *trained* on the synthetic MiniWorld (``train/miniworld``, see
``docs/miniworld.md``), shipped in :data:`MINIWORLD_DIR` so that the demo means something without FLUX
weights.

Files of a MiniWorld folder: ``flux.safetensors`` (FLUX.1-layout transformer), ``vae.safetensors`` +
``vae.json`` (FLUX-layout ``AutoencoderKL``, 16 latent channels, 8x; the JSON holds its diffusers
config with the world's latent shift/scale), ``recognizer.onnx`` (ArcFace contract), optionally
``adapter.safetensors`` (the AnyPhoto adapter trained on it), ``demo/`` (reference photos of held-out
people with exact landmarks, ``demo.json``) and ``provenance.json`` (command, seed and commit of each
file). The text encoders are the core's tiny ones (:mod:`.tiny`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .errors import ModelFileError
from .vae import FluxVAE, load_flux_vae

MINIWORLD_DIR = Path(__file__).with_name("miniworld_models")
REQUIRED = ("flux.safetensors", "vae.safetensors", "vae.json", "recognizer.onnx")


def miniworld_dir(folder: str | os.PathLike | None = None) -> Path:
    """``folder``, or the shipped set; :class:`ModelFileError` naming the missing files if incomplete."""
    root = Path(folder) if folder is not None else MINIWORLD_DIR
    missing = [name for name in REQUIRED if not (root / name).is_file()]
    if missing:
        raise ModelFileError(
            f"MiniWorld model folder {root} lacks {missing}; train them with the commands of docs/miniworld.md "
            "(python -m train.miniworld ...) or restore the shipped files from git"
        )
    return root


def miniworld_available(folder: str | os.PathLike | None = None) -> bool:
    try:
        miniworld_dir(folder)
    except ModelFileError:
        return False
    return True


def load_miniworld_vae(folder: str | os.PathLike | None = None, device="cpu") -> FluxVAE:
    """The world VAE through the project's FLUX VAE loader (config from ``vae.json``)."""
    root = miniworld_dir(folder)
    config = json.loads((root / "vae.json").read_text())["config"]
    return load_flux_vae(root / "vae.safetensors", config=config, device=device)


def load_miniworld_recognizer(folder: str | os.PathLike | None = None):
    """The world recognizer (``ArcFaceRecognizer`` over onnxruntime, CPU)."""
    from ...faces import load_arcface_recognizer

    return load_arcface_recognizer(miniworld_dir(folder) / "recognizer.onnx", providers=["CPUExecutionProvider"])


def demo_people(folder: str | os.PathLike | None = None) -> tuple[list[dict], str, tuple[int, int]]:
    """The shipped demo: ``[{"photo": Path, "landmarks": (5, 2), "box": [x1, y1, x2, y2] fractions}]``,
    the prompt and the output size, from ``demo/demo.json``."""
    root = miniworld_dir(folder) / "demo"
    spec = json.loads((root / "demo.json").read_text())
    people = [
        {"photo": root / p["photo"], "landmarks": np.asarray(p["landmarks"], dtype=np.float64), "box": p["box"]}
        for p in spec["people"]
    ]
    return people, spec["prompt"], tuple(spec["size"])
