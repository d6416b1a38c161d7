"""AnyPhoto ComfyUI nodes: thin adapters over anyphoto_core (classic V1 node classes)."""

from . import host
from .canvas import AnyPhotoBuildLocationCanvas
from .evaluate import AnyPhotoEvaluate
from .faces import AnyPhotoArcFaceEmbed, AnyPhotoFaceAnalysisLoader, AnyPhotoLoadFaceRefs
from .model import AnyPhotoAdapterLoader, AnyPhotoApply
from .sampler import AnyPhotoIdentityIsolatedSampler

host.register_model_folders()

NODE_CLASS_MAPPINGS = {
    "AnyPhotoFaceAnalysisLoader": AnyPhotoFaceAnalysisLoader,
    "AnyPhotoAdapterLoader": AnyPhotoAdapterLoader,
    "AnyPhotoLoadFaceRefs": AnyPhotoLoadFaceRefs,
    "AnyPhotoArcFaceEmbed": AnyPhotoArcFaceEmbed,
    "AnyPhotoBuildLocationCanvas": AnyPhotoBuildLocationCanvas,
    "AnyPhotoApply": AnyPhotoApply,
    "AnyPhotoIdentityIsolatedSampler": AnyPhotoIdentityIsolatedSampler,
    "AnyPhotoEvaluate": AnyPhotoEvaluate,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "AnyPhotoFaceAnalysisLoader": "AnyPhoto Face Analysis Loader",
    "AnyPhotoAdapterLoader": "AnyPhoto Adapter Loader",
    "AnyPhotoLoadFaceRefs": "LoadFaceRefs",
    "AnyPhotoArcFaceEmbed": "ArcFaceEmbed",
    "AnyPhotoBuildLocationCanvas": "BuildLocationCanvas",
    "AnyPhotoApply": "AnyPhotoApply",
    "AnyPhotoIdentityIsolatedSampler": "IdentityIsolatedSampler",
    "AnyPhotoEvaluate": "AnyPhoto Evaluate",
}
