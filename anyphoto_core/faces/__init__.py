"""Face analysis: photos -> detected faces, 5 landmarks, aligned crops and ArcFace embeddings.

Host-independent. Importing it needs neither torch nor insightface/onnxruntime: insightface and
onnxruntime are imported by the first face operation (with the install fix when missing), and the
torch parts (``TorchArcFace``, ``align_faces_torch``, ``similarity_umeyama``) on first access. See
``docs/faces.md`` for the model folder layout, providers, the embedding convention and the errors.
"""

from .alignment import aligned_crop_with_alpha, arcface_crop
from .analyzer import FaceAnalyzer, load_centerface_analyzer, load_face_analyzer
from .backends import (
    ArcFaceRecognizer,
    CenterFaceDetector,
    Detection,
    Detector,
    InsightFaceDetector,
    Recognizer,
    load_arcface_recognizer,
)
from .errors import (
    FaceError,
    FaceModelError,
    FaceTooSmallError,
    MultipleFacesError,
    NoFaceError,
    UnreadableImageError,
)
from .layout import LayoutPlacements, placements_from_layout_photo
from .model_pack import locate_model_pack
from .photos import load_photo
from .references import (
    MIN_EYE_DISTANCE,
    FaceRef,
    Identity,
    build_identity,
    face_ref_at,
    face_ref_from_photo,
    load_identities,
)
from .runtime import default_providers, onnxruntime_install_problem
from .selection import CHOICE_RULES, FaceChoice, choose_face

#: Names served lazily from ``torch_arcface`` (it imports torch).
_TORCH_NAMES = ("TorchArcFace", "align_faces_torch", "similarity_umeyama")


def __getattr__(name: str):
    if name in _TORCH_NAMES:
        from . import torch_arcface

        return getattr(torch_arcface, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CHOICE_RULES",
    "MIN_EYE_DISTANCE",
    "ArcFaceRecognizer",
    "CenterFaceDetector",
    "Detection",
    "Detector",
    "FaceAnalyzer",
    "FaceChoice",
    "FaceError",
    "FaceModelError",
    "FaceRef",
    "FaceTooSmallError",
    "Identity",
    "InsightFaceDetector",
    "LayoutPlacements",
    "MultipleFacesError",
    "NoFaceError",
    "Recognizer",
    "TorchArcFace",
    "UnreadableImageError",
    "align_faces_torch",
    "aligned_crop_with_alpha",
    "arcface_crop",
    "build_identity",
    "choose_face",
    "default_providers",
    "face_ref_at",
    "face_ref_from_photo",
    "load_arcface_recognizer",
    "load_centerface_analyzer",
    "load_face_analyzer",
    "load_identities",
    "load_photo",
    "locate_model_pack",
    "onnxruntime_install_problem",
    "placements_from_layout_photo",
    "similarity_umeyama",
]
