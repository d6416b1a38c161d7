"""Reference faces: from a person's photos to :class:`FaceRef` s and an :class:`Identity`.

Embedding convention (binding for the whole project): each photo's recognizer output is
L2-normalized (``FaceRef.embedding``); an identity's embedding is the L2-normalized mean of its
photos' normalized embeddings (``Identity.embedding``). Primary face (the one pasted on the
location canvas): the ``FaceRef`` with the highest detection score (first one on ties).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from ..geometry import arcface_template
from ..notices import PHOTO_SKIPPED, Notice
from .alignment import aligned_crop_with_alpha, arcface_crop
from .analyzer import FaceAnalyzer
from .backends import Detection, Recognizer
from .errors import FaceError, FaceTooSmallError, MultipleFacesError, NoFaceError
from .photos import load_photo, photo_name, truncation_notice
from .selection import FaceChoice, choose_face

#: Default minimum eye distance (pixels in the source photo). The 112 crop has 35.2 px between
#: the eyes; below 16 px the crop is upsampled more than 2.2x and the embedding degrades.
MIN_EYE_DISTANCE = 16.0


def l2_normalize(vector: np.ndarray) -> np.ndarray:
    """``vector / ||vector||`` as float32; raises ``FaceError`` for a zero or non-finite vector."""
    vec = np.asarray(vector, dtype=np.float64).reshape(-1)
    norm = float(np.linalg.norm(vec))
    if not np.isfinite(norm) or norm == 0.0:
        raise FaceError("the recognizer returned a zero or non-finite embedding; the model file is broken")
    return (vec / norm).astype(np.float32)


@dataclass(frozen=True)
class FaceRef:
    """One detected face in one photo.

    source: photo name (file path or given name); box: (4,) x1,y1,x2,y2 photo pixels; score: detection
    score; landmarks: (5, 2) photo pixels; crop112: (112, 112, 3) uint8 RGB ArcFace crop (recognizer
    input); crop: (S, S, 3) uint8 RGB ArcFace-aligned crop (S = crop size, default 512); crop_alpha:
    (S, S) uint8, 255 inside the photo and 0 where the warp fell outside it; crop_landmarks: (5, 2) the
    landmarks in crop pixels (= ``arcface_template(S)``); embedding: (512,) float32 L2-normalized;
    faces_found: how many faces the detector found in the photo; recognizer: name of the recognizer
    that made ``embedding`` (``""`` = unknown).
    """

    source: str
    box: np.ndarray
    score: float
    landmarks: np.ndarray
    crop112: np.ndarray
    crop: np.ndarray
    crop_alpha: np.ndarray
    crop_landmarks: np.ndarray
    embedding: np.ndarray
    faces_found: int
    recognizer: str = ""


@dataclass(frozen=True)
class Identity:
    """A person: ``faces`` (one :class:`FaceRef` per photo, at least one) and ``notices``: what the user
    must be told about them (e.g. photos skipped for having no face)."""

    faces: tuple[FaceRef, ...]
    notices: tuple[Notice, ...] = ()

    def __post_init__(self):
        if not self.faces:
            raise FaceError("an identity needs at least one face")

    @property
    def embedding(self) -> np.ndarray:
        """(512,) float32: L2-normalized mean of the faces' L2-normalized embeddings."""
        return l2_normalize(np.mean([f.embedding for f in self.faces], axis=0))

    @property
    def primary(self) -> FaceRef:
        """The face pasted on the location canvas: highest detection score (first on ties)."""
        return max(self.faces, key=lambda f: f.score)

    @property
    def recognizer(self) -> str:
        """Name of the recognizer of every face's embedding; ``""`` when unknown or mixed."""
        names = {f.recognizer for f in self.faces}
        return names.pop() if len(names) == 1 else ""


def reembed_identity(identity: Identity, analyzer: FaceAnalyzer) -> Identity:
    """``identity`` with every face's embedding remade by ``analyzer``'s recognizer (same crops)."""
    faces = tuple(
        replace(f, embedding=l2_normalize(analyzer.recognizer.embed(f.crop112)), recognizer=analyzer.recognizer_name)
        for f in identity.faces
    )
    return replace(identity, faces=faces)


def face_ref_from_photo(
    photo,
    analyzer: FaceAnalyzer,
    *,
    name: str | None = None,
    rule: str = "largest",
    index: int = 0,
    first: int = 0,
    expect_single: bool = False,
    crop_size: int = 512,
    min_eye_distance: float = MIN_EYE_DISTANCE,
) -> FaceRef:
    """Detect, choose (``rule``/``index``/``first``, see :func:`choose_face`), align and embed one face of ``photo``.

    ``photo``: path, PIL image or array (see :func:`load_photo`). ``crop_size``: a multiple of 112 or
    128. Raises :class:`NoFaceError`, :class:`MultipleFacesError` (only with ``expect_single``),
    :class:`FaceTooSmallError`.
    """
    crop_template(crop_size)  # checked before the detector runs
    label = name or photo_name(photo, "image")
    image = load_photo(photo, label)
    detections = analyzer.detector.detect(image)
    if not detections:
        summary = getattr(analyzer.detector, "search_summary", None)
        searched = summary(image.shape) if summary is not None else f"{image.shape[1]}x{image.shape[0]} px"
        raise NoFaceError(
            f"no face found in {label} ({searched}); use a photo where the face is clearly visible, frontal, "
            f"not cut off and at least {min_eye_distance:g} px between the eyes"
        )
    if expect_single and len(detections) > 1:
        raise MultipleFacesError(
            f"{len(detections)} faces found in {label} but one was expected; crop the photo to one person or "
            "choose a face with a choice rule and index"
        )
    det = choose_face(detections, rule, index, what=label, first=first)
    if det.eye_distance < min_eye_distance:
        raise FaceTooSmallError(
            f"the face in {label} is too small: {det.eye_distance:.1f} px between the eyes, at least "
            f"{min_eye_distance:g} px are needed; use a larger or closer photo of the face"
        )
    return face_ref_at(image, det, analyzer.recognizer, label, crop_size, len(detections), analyzer.recognizer_name)


def face_ref_at(
    image: np.ndarray,
    det: Detection,
    recognizer: Recognizer,
    source: str,
    crop_size: int = 512,
    faces_found: int = 1,
    recognizer_name: str = "",
) -> FaceRef:
    """Align and embed the face of ``image`` (H, W, 3 uint8 RGB) at a known detection ``det`` (box, score,
    landmarks), e.g. a synthetic photo whose landmarks are exact. ``recognizer_name``: recorded on the
    :class:`FaceRef` (``""`` = unknown)."""
    crop112 = arcface_crop(image, det.landmarks)
    crop, alpha, _ = aligned_crop_with_alpha(image, det.landmarks, crop_size)
    return FaceRef(
        source=source,
        box=det.box,
        score=det.score,
        landmarks=det.landmarks,
        crop112=crop112,
        crop=crop,
        crop_alpha=alpha,
        crop_landmarks=crop_template(crop_size),
        embedding=l2_normalize(recognizer.embed(crop112)),
        faces_found=faces_found,
        recognizer=recognizer_name,
    )


def crop_template(crop_size) -> np.ndarray:
    """ArcFace landmarks of a ``crop_size`` crop; :class:`FaceError` unless it is a multiple of 112 or 128."""
    if isinstance(crop_size, bool) or not isinstance(crop_size, (int, np.integer)) or crop_size < 112:
        raise FaceError(f"crop_size must be a whole number of pixels, at least 112, got {crop_size!r}")
    try:
        return arcface_template(int(crop_size))
    except ValueError as exc:
        raise FaceError(f"crop_size {crop_size}: {exc} (e.g. 448 or 512)") from None


def build_identity(
    photos: Sequence,
    analyzer: FaceAnalyzer,
    *,
    on_no_face: str = "error",
    person: str = "person",
    choices: Sequence[FaceChoice | None] | None = None,
    **kwargs,
) -> Identity:
    """An :class:`Identity` from one or more photos of one person (keyword args: :func:`face_ref_from_photo`).

    ``choices``: per photo, the :class:`FaceChoice` for that photo only (None = the ``rule``/``index``
    keyword arguments, default the largest face). ``on_no_face="skip"`` drops photos without a face
    and says so in ``Identity.notices``; a person left with no photo is still an error.
    """
    if on_no_face not in ("error", "skip"):
        raise FaceError(f'on_no_face must be "error" or "skip", got {on_no_face!r}')
    if isinstance(photos, (str, bytes)) or not isinstance(photos, Sequence) or len(photos) == 0:
        raise FaceError(f"{person}: give a non-empty list of photos")
    choices = [None] * len(photos) if choices is None else list(choices)
    if len(choices) != len(photos):
        raise FaceError(f"{person}: {len(choices)} face choices given for {len(photos)} photos")
    faces, notices = [], []
    for k, (photo, choice) in enumerate(zip(photos, choices, strict=True)):
        label = photo_name(photo, f"{person} photo {k + 1}")
        chosen = kwargs if choice is None else {**kwargs, "rule": choice.rule, "index": choice.index}
        if choice is not None:
            chosen["first"] = choice.first
        image = load_photo(photo, label)
        truncated = truncation_notice(image, label if label.startswith(person) else f"{person}: {label}")
        if truncated is not None:
            notices.append(truncated)
        try:
            faces.append(face_ref_from_photo(image, analyzer, name=label, **chosen))
        except NoFaceError as exc:
            if on_no_face == "error":
                raise
            notices.append(Notice(PHOTO_SKIPPED, f"{person}: {exc}; this photo was skipped"))
    if not faces:
        raise NoFaceError(f"{person}: none of the {len(photos)} photo(s) has a detectable face")
    return Identity(tuple(faces), tuple(notices))


def load_identities(people: Sequence[Sequence], analyzer: FaceAnalyzer, **kwargs) -> list[Identity]:
    """One :class:`Identity` per person; ``people[k]`` is person k's list of photos."""
    return [build_identity(photos, analyzer, person=f"person {k + 1}", **kwargs) for k, photos in enumerate(people)]
