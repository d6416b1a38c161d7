"""Face analysis: photos -> detected faces, 5 landmarks, aligned crops and ArcFace embeddings.

Host-independent (insightface + onnxruntime + torch). See ``docs/faces.md`` for the model folder
layout, providers, the embedding convention and the errors.
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
from .layout import placements_from_layout_photo
from .model_pack import locate_model_pack
from .photos import load_photo
from .references import MIN_EYE_DISTANCE, FaceRef, Identity, build_identity, face_ref_from_photo, load_identities
from .runtime import default_providers, onnxruntime_install_problem
from .selection import CHOICE_RULES, choose_face
from .torch_arcface import TorchArcFace, align_faces_torch, similarity_umeyama

__all__ = [
    "CHOICE_RULES",
    "MIN_EYE_DISTANCE",
    "ArcFaceRecognizer",
    "CenterFaceDetector",
    "Detection",
    "Detector",
    "FaceAnalyzer",
    "FaceError",
    "FaceModelError",
    "FaceRef",
    "FaceTooSmallError",
    "Identity",
    "InsightFaceDetector",
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
