"""Custom ComfyUI types of the pack and the payloads they carry between nodes."""

from __future__ import annotations

from dataclasses import dataclass

from anyphoto_core.canvas import LocationCanvas
from anyphoto_core.placements import Placement

FACE_REFS = "ANYPHOTO_FACE_REFS"  # list[anyphoto_core.faces.Identity], person order
CANVAS = "ANYPHOTO_CANVAS"  # CanvasSet
EMBEDS = "ANYPHOTO_EMBEDS"  # anyphoto_core.embeddings.IdentityEmbeddings (both kinds + recognizer)
ADAPTER = "ANYPHOTO_ADAPTER"  # comfy ModelPatcher around anyphoto_core.adapter.AnyPhotoAdapter
FACE_ANALYSIS = "ANYPHOTO_FACE_ANALYSIS"  # anyphoto_core.faces.FaceAnalyzer


@dataclass(frozen=True)
class CanvasSet:
    """Per-identity location canvases of one output size. ``size`` = (width, height) pixels."""

    canvases: tuple[LocationCanvas, ...]
    placements: tuple[Placement, ...]
    size: tuple[int, int]
