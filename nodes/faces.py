"""Face nodes: face analysis loader, reference faces per person, identity embeddings."""

from __future__ import annotations

import json
import os

import numpy as np

from anyphoto_core.adapter import DEFAULT_EMBEDDING_KIND
from anyphoto_core.app.previews import face_strip
from anyphoto_core.faces import CHOICE_RULES, FaceModelError, build_identity, load_face_analyzer
from anyphoto_core.faces.references import Identity, l2_normalize

from . import host
from .types import EMBEDS, FACE_ANALYSIS, FACE_REFS, IdentityEmbeds

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
                    "INT",
                    {
                        "default": 0,
                        "min": 0,
                        "max": 64,
                        "tooltip": "k for the index and left_to_right rules (0 = first)",
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

    def load(self, face_analysis, choice_rule, face_index, on_no_face, photos="", **people):
        names = parse_photo_names(photos)
        wired = [k for k in range(1, MAX_PEOPLE_INPUTS + 1) if people.get(f"person_{k}") is not None]
        count = max([len(names)] + wired)
        if count == 0:
            raise ValueError("no reference photos: connect person_1.. IMAGE inputs or list files in 'photos'")
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
                    index=face_index,
                )
            )
            bar.update(1)
        return (identities, host.arrays_to_image([refs_preview(identities)]))


def refs_preview(identities: list[Identity]) -> np.ndarray:
    """All aligned faces, person by person, landmarks in the person's colour."""
    faces = [(k, f) for k, ident in enumerate(identities) for f in ident.faces]
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
        rows = []
        for ident in face_refs:
            if face_analysis is None:
                rows.append(ident.embedding)
            else:
                per_photo = [l2_normalize(face_analysis.recognizer.embed(f.crop112)) for f in ident.faces]
                rows.append(l2_normalize(np.mean(per_photo, axis=0)))
        return (IdentityEmbeds(np.stack(rows).astype(np.float32), DEFAULT_EMBEDDING_KIND),)
