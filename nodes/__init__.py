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
#: One scheme: display name "AnyPhoto <what it does>", category "AnyPhoto/<lower-case stage>".
NODE_DISPLAY_NAME_MAPPINGS = {
    "AnyPhotoFaceAnalysisLoader": "AnyPhoto Face Analysis Loader",
    "AnyPhotoAdapterLoader": "AnyPhoto Adapter Loader",
    "AnyPhotoLoadFaceRefs": "AnyPhoto Load Face Refs",
    "AnyPhotoArcFaceEmbed": "AnyPhoto ArcFace Embed",
    "AnyPhotoBuildLocationCanvas": "AnyPhoto Build Location Canvas",
    "AnyPhotoApply": "AnyPhoto Apply",
    "AnyPhotoIdentityIsolatedSampler": "AnyPhoto Identity-Isolated Sampler",
    "AnyPhotoEvaluate": "AnyPhoto Evaluate",
}
