"""A tiny training set from the insightface wheel's real photos, the fixture recognizer, tiny configs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures.face_models import build_tiny_recognizer, insightface_image

from anyphoto_core.app.models.tiny import ensure_tiny_models
from anyphoto_core.faces import TorchArcFace, load_photo
from anyphoto_core.geometry import ARCFACE_TEMPLATE_112
from train.config import load_config
from train.manifest import FaceAnnotation, ImageRecord, Manifest, ReferencePhoto, write_manifest

# Two faces of t1.jpg (CenterFace detections, rounded, hard-set here): box, 5 landmarks.
T1_FACES = {
    "left": ([269, 150, 375, 269], [[288, 206], [324, 195], [307, 228], [313, 248], [340, 239]]),
    "middle": ([464, 264, 572, 415], [[493, 323], [544, 332], [510, 356], [488, 375], [531, 382]]),
    "right": ([748, 342, 847, 482], [[760, 398], [802, 397], [771, 425], [766, 447], [802, 446]]),
}


def write_tiny_manifest(folder: Path, recognizer_path: Path) -> Path:
    """Manifest: t1.jpg with two annotated faces (+ one with one face); galleries embedded by the recognizer."""
    t1, tom = insightface_image("t1.jpg"), insightface_image("Tom_Hanks_54745.png")
    rec = TorchArcFace(recognizer_path)

    def embed(path, lmk):
        img = torch.from_numpy(load_photo(path)).permute(2, 0, 1)[None].float() / 255
        with torch.no_grad():
            e = rec.embed_aligned(img, torch.tensor(lmk, dtype=torch.float32)[None])[0].numpy()
        return (e / np.linalg.norm(e)).astype(np.float32)

    def face(name):
        box, lmk = T1_FACES[name]
        return FaceAnnotation(name, np.array(box, float), np.array(lmk, float))

    galleries = {n: (ReferencePhoto(t1, np.array(T1_FACES[n][1], float), embed(t1, T1_FACES[n][1])),) for n in T1_FACES}
    galleries["middle"] += (ReferencePhoto(tom, ARCFACE_TEMPLATE_112.copy(), embed(tom, ARCFACE_TEMPLATE_112)),)
    images = (
        ImageRecord(t1, "two people at a party", (face("left"), face("middle"))),
        ImageRecord(t1, "a man in a crowd", (face("right"),)),
    )
    path = folder / "manifest.jsonl"
    write_manifest(path, Manifest(galleries, images))
    return path


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: the tiny models' ops are too small to split, and OpenMP threads that spin on a busy
    2-core machine made a training step 10-50x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def recognizer_path(tmp_path_factory) -> Path:
    return build_tiny_recognizer(tmp_path_factory.mktemp("rec") / "tiny_recognizer.onnx")


@pytest.fixture(scope="session")
def tiny_manifest(tmp_path_factory, recognizer_path) -> Path:
    return write_tiny_manifest(tmp_path_factory.mktemp("data"), recognizer_path)


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory) -> Path:
    """The core's built-in tiny model set (random weights in the real file layouts)."""
    return ensure_tiny_models(tmp_path_factory.mktemp("tiny") / "v1")


TINY_YAML = Path(__file__).resolve().parents[2] / "train" / "configs" / "tiny.yaml"


def tiny_overrides(manifest: Path, recognizer: Path, models: Path, output: Path, *extra: str) -> list[str]:
    return [
        f"data.manifest={manifest}",
        f"model.recognizer={recognizer}",
        f"model.tiny_dir={models}",
        f"run.output={output}",
        "run.cpu=true",
        "run.checkpoint_every=0",
        "run.log_every=1000",
        *extra,
    ]


@pytest.fixture(scope="session")
def frozen_models(tiny_models_dir, recognizer_path):
    """Frozen tiny models shared by the trainer tests (loading them is the slow part of a Trainer)."""
    from train.models import build_models

    cfg = load_config(TINY_YAML, [f"model.tiny_dir={tiny_models_dir}", f"model.recognizer={recognizer_path}"])
    return build_models(cfg.model)


@pytest.fixture
def tiny_cli_args(tiny_manifest, recognizer_path, tiny_models_dir, tmp_path):
    """``--config``-style arguments for ``python -m train fit`` / a launched worker: (yaml path, overrides)."""
    return str(TINY_YAML), tiny_overrides(tiny_manifest, recognizer_path, tiny_models_dir, tmp_path / "run")


@pytest.fixture
def tiny_config(tiny_manifest, recognizer_path, tiny_models_dir, tmp_path):
    def make(*extra):
        return load_config(
            TINY_YAML, tiny_overrides(tiny_manifest, recognizer_path, tiny_models_dir, tmp_path / "run", *extra)
        )

    return make
