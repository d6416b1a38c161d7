"""Face nodes: face analysis loader, reference faces per person, identity embeddings."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np

from anyphoto_core.embeddings import IdentityEmbeddings
from anyphoto_core.faces import CHOICE_RULES, FaceModelError, build_identity, load_face_analyzer
from anyphoto_core.faces.references import Identity, reembed_identity

from . import host
from .feedback import with_warnings
from .types import EMBEDS, FACE_ANALYSIS, FACE_REFS

MODEL_PACKS = ("antelopev2", "buffalo_l")
PROVIDERS = {"auto": None, "CUDA": ["CUDAExecutionProvider", "CPUExecutionProvider"], "CPU": ["CPUExecutionProvider"]}
MAX_PEOPLE_INPUTS = 4
CATEGORY = "AnyPhoto/faces"


class AnyPhotoFaceAnalysisLoader:
    DESCRIPTION = "Loads an insightface model pack (detection + ArcFace recognition) from models/insightface."

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model_pack": (
                    list(MODEL_PACKS),
                    {
                        "default": "antelopev2",
                        "tooltip": "insightface pack in models/insightface/models/<name>/ (*.onnx files)",
                    },
                ),
                "provider": (
                    list(PROVIDERS),
                    {"default": "auto", "tooltip": "onnxruntime device: auto = CUDA when available, else CPU"},
                ),
            }
        }

    RETURN_TYPES = (FACE_ANALYSIS, "STRING")
    RETURN_NAMES = ("face_analysis", "provider")
    FUNCTION = "load"
    CATEGORY = CATEGORY

    def load(self, model_pack, provider):
        roots = host.model_folder_paths("insightface")
        if not roots:
            raise FaceModelError(
                "no models/insightface folder is registered; put the pack in ComfyUI/models/insightface"
            )
        errors = []
        for root in roots:
            if not os.path.isdir(os.path.join(root, "models", model_pack)):
                errors.append(root)
                continue
            analyzer = load_face_analyzer(root, model_pack, providers=PROVIDERS[provider])
            used = ", ".join(f"{task}: {p}" for task, p in analyzer.providers.items())
            return (analyzer, used)
        raise FaceModelError(
            f"insightface pack {model_pack!r} not found; expected the .onnx files in "
            f"{' or '.join(os.path.join(r, 'models', model_pack) for r in errors)}"
        )


def resolve_input_file(name: str, input_dir: str) -> str:
    """Path of ``name`` inside ComfyUI's input folder; ``ValueError`` for absolute paths, ``..`` or
    anything resolving outside it, or a missing file."""
    cleaned = str(name).strip()
    if not cleaned:
        raise ValueError("empty photo name in 'photos'")
    if os.path.isabs(cleaned) or cleaned.startswith(("/", "\\")) or ".." in cleaned.replace("\\", "/").split("/"):
        raise ValueError(
            f"photo {cleaned!r}: give a file name inside ComfyUI's input folder (no absolute paths, no '..')"
        )
    root = os.path.realpath(input_dir)
    path = os.path.realpath(os.path.join(root, cleaned))
    if os.path.commonpath([root, path]) != root:
        raise ValueError(f"photo {cleaned!r} resolves outside ComfyUI's input folder")
    if not os.path.isfile(path):
        raise ValueError(f"photo {cleaned!r} not found in ComfyUI's input folder ({root}); upload it first")
    return path


def parse_photo_names(text: str) -> list[list[str]]:
    """``photos`` widget: JSON ``[["a.png", "b.png"], ["c.jpg"]]`` (one list per person), or one line per
    person with comma-separated names. Empty text = no files."""
    text = (text or "").strip()
    if not text:
        return []
    if text.startswith("["):
        try:
            people = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"'photos' is not valid JSON ({exc.msg} at char {exc.pos})") from None
        if not isinstance(people, list) or not all(
            isinstance(p, list) and all(isinstance(n, str) for n in p) for p in people
        ):
            raise ValueError('\'photos\' JSON must be a list of lists of file names, e.g. [["a.png"], ["b.png"]]')
        return people
    return [[n.strip() for n in line.split(",") if n.strip()] for line in text.splitlines() if line.strip()]


class AnyPhotoLoadFaceRefs:
    DESCRIPTION = (
        "Reference faces for up to 4 people from IMAGE inputs (a batch = several photos of one person) "
        "and/or files of ComfyUI's input folder. Person k = person_k images + line k of 'photos'."
    )

    @classmethod
    def INPUT_TYPES(cls):
        optional = {
            f"person_{k}": ("IMAGE", {"tooltip": f"photos of person {k} (a batch = several photos)"})
            for k in range(1, MAX_PEOPLE_INPUTS + 1)
        }
        return {
            "required": {
                "face_analysis": (FACE_ANALYSIS, {"tooltip": "from AnyPhoto Face Analysis Loader"}),
                "choice_rule": (
                    list(CHOICE_RULES),
                    {
                        "default": "largest",
                        "tooltip": "which face of a photo with several faces: largest, index (detector order), "
                        "left_to_right (k-th from the left), best_score",
                    },
                ),
                "face_index": (
                    "STRING",
                    {
                        "default": "",
                        "tooltip": "per person, comma separated: which face (0 = first) for the index and "
                        "left_to_right rules, e.g. '0, 1' = two people from one group photo; empty = 0",
                    },
                ),
                "on_no_face": (
                    ["error", "skip"],
                    {"default": "error", "tooltip": "a photo without a face: stop with an error, or skip the photo"},
                ),
                "photos": (
                    "STRING",
                    {
                        "default": "",
                        "multiline": True,
                        "tooltip": 'files in ComfyUI\'s input folder per person: JSON [["a.png","b.png"],["c.jpg"]] '
                        "or one line per person with comma-separated names",
                    },
                ),
            },
            "optional": optional,
        }

    RETURN_TYPES = (FACE_REFS, "IMAGE")
    RETURN_NAMES = ("face_refs", "preview")
    FUNCTION = "load"
    CATEGORY = CATEGORY

    @classmethod
    def IS_CHANGED(cls, photos="", **_):
        """Re-run when a file listed in ``photos`` changed under the same name (IMAGE inputs carry their
        own change detection, e.g. LoadImage hashes its file)."""
        return photos_fingerprint(photos, host.input_directory())

    def load(self, face_analysis, choice_rule, face_index, on_no_face, photos="", **people):
        names = parse_photo_names(photos)
        wired = [k for k in range(1, MAX_PEOPLE_INPUTS + 1) if people.get(f"person_{k}") is not None]
        count = max([len(names)] + wired)
        if count == 0:
            raise ValueError("no reference photos: connect person_1.. IMAGE inputs or list files in 'photos'")
        indices = parse_face_indices(face_index, count, choice_rule)
        input_dir = host.input_directory() if names else None
        per_person = []
        for k in range(count):
            batch = people.get(f"person_{k + 1}")
            photos_k = [
                (f"person {k + 1} image {i + 1}", a)
                for i, a in enumerate(host.image_to_arrays(batch) if batch is not None else [])
            ]
            photos_k += [(n, resolve_input_file(n, input_dir)) for n in (names[k] if k < len(names) else [])]
            if not photos_k:
                raise ValueError(f"person {k + 1} has no photos: connect person_{k + 1} or add a line to 'photos'")
            per_person.append(photos_k)
        bar = host.progress_bar(count)
        identities = []
        for k, photos_k in enumerate(per_person):
            srcs = [p for _, p in photos_k]
            identities.append(
                build_identity(
                    srcs,
                    face_analysis,
                    on_no_face=on_no_face,
                    person=f"person {k + 1}",
                    rule=choice_rule,
                    index=indices[k],
                )
            )
            bar.update(1)
        preview = host.arrays_to_image([refs_preview(identities)])
        notices = [n for ident in identities for n in ident.notices] + shared_face_warnings(identities)
        return with_warnings((identities, preview), notices)


def parse_face_indices(text: str, count: int, rule: str) -> list[int]:
    """``face_index`` widget: one 0-based face number per person, comma separated (``"2, 0"``); missing
    entries are 0. ``ValueError`` for text that is not whole numbers >= 0, more numbers than people, or
    numbers other than 0 under a rule that ignores them (``largest``, ``best_score``)."""
    items = [t.strip() for t in str(text or "").split(",")]
    items = [] if items == [""] else items
    if len(items) > count:
        raise ValueError(f"face_index has {len(items)} entries ({text!r}) for {count} people; give one per person")
    if not all(t.isdigit() for t in items):
        raise ValueError(f"face_index must be whole numbers >= 0 separated by commas, one per person, got {text!r}")
    indices = [int(t) for t in items] + [0] * (count - len(items))
    if rule not in ("index", "left_to_right") and any(indices):
        person = next(k for k, i in enumerate(indices) if i) + 1
        raise ValueError(
            f"face_index {indices[person - 1]} for person {person} is used only by the index and left_to_right "
            f"rules, but choice_rule is {rule!r}; set choice_rule to left_to_right (k-th face from the left) "
            "or clear face_index"
        )
    return indices


def shared_face_warnings(identities: list[Identity]) -> list[str]:
    """One message per pair of people whose references include the very same face (same aligned
    pixels): the same group photo under a rule that picks the same face for both."""
    messages = []
    for i, first in enumerate(identities):
        for j in range(i + 1, len(identities)):
            same = [a.source for a in first.faces for b in identities[j].faces if np.array_equal(a.crop112, b.crop112)]
            if same:
                messages.append(
                    f"person {i + 1} and person {j + 1} got the same face ({same[0]}): for several people from "
                    "one group photo set choice_rule to left_to_right and face_index to one number per person, "
                    "e.g. '0, 1'"
                )
    return messages


def photos_fingerprint(photos: str, input_dir: str) -> str:
    """SHA-256 hex digest of the names and bytes of the files ``photos`` lists, person by person, so that a
    photo replaced under the same name changes it. A list that cannot be read hashes its error text (the
    run then reports that error)."""
    digest = hashlib.sha256()
    try:
        for k, names in enumerate(parse_photo_names(photos)):
            for name in names:
                path = resolve_input_file(name, input_dir)
                digest.update(f"{k}\0{name}\0".encode())
                with open(path, "rb") as file:
                    for chunk in iter(lambda: file.read(1 << 20), b""):
                        digest.update(chunk)
    except (ValueError, OSError) as exc:
        digest.update(f"error: {exc}".encode())
    return digest.hexdigest()


def refs_preview(identities: list[Identity]) -> np.ndarray:
    """All aligned faces, person by person, landmarks in the person's colour."""
    faces = [(k, f) for k, ident in enumerate(identities) for f in ident.faces]
    from anyphoto_core.app.previews import face_strip  # preview drawing (app code), imported when a preview is made

    return face_strip([f.crop for _, f in faces], [f.crop_landmarks for _, f in faces], [k for k, _ in faces])


class AnyPhotoArcFaceEmbed:
    DESCRIPTION = "One ArcFace identity embedding per person (mean of the person's normalized photo embeddings)."

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {"face_refs": (FACE_REFS, {"tooltip": "from AnyPhoto Load Face Refs"})},
            "optional": {
                "face_analysis": (
                    FACE_ANALYSIS,
                    {"tooltip": "re-embed the faces with this recognizer; unset = keep Load Face Refs' embeddings"},
                )
            },
        }

    RETURN_TYPES = (EMBEDS,)
    RETURN_NAMES = ("embeds",)
    FUNCTION = "embed"
    CATEGORY = CATEGORY

    def embed(self, face_refs, face_analysis=None):
        if not face_refs:
            raise ValueError("face_refs is empty: no person to embed")
        if face_analysis is not None:
            face_refs = [reembed_identity(ident, face_analysis) for ident in face_refs]
        return (IdentityEmbeddings.from_identities(face_refs),)
