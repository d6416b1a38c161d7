"""Loading insightface packs: folder convention, broken installs, no downloads, providers."""

from __future__ import annotations

import shutil

import pytest

from anyphoto_core.faces import FaceModelError, load_face_analyzer, onnxruntime_install_problem
from anyphoto_core.faces.model_pack import locate_model_pack

pytestmark = pytest.mark.torchfree


def _copy_pack(src_root, dst_root, subdir="models/antelopev2", keep=None):
    dst = dst_root / subdir
    dst.mkdir(parents=True)
    for f in (src_root / "models" / "antelopev2").glob("*.onnx"):
        if keep is None or keep in f.name:
            shutil.copy(f, dst / f.name)
    return dst


@pytest.fixture
def no_download(monkeypatch):
    """Fail the test if insightface reaches its downloader."""
    import insightface.app.face_analysis as fa
    import insightface.model_zoo.model_zoo as mz

    def boom(*args, **kwargs):
        raise AssertionError("insightface tried to download a model")

    monkeypatch.setattr(fa, "ensure_available", boom)
    monkeypatch.setattr(mz, "download_onnx", boom)


def test_fixture_pack_loads_with_real_insightface(fixture_analyzer, no_download):
    from insightface.model_zoo.arcface_onnx import ArcFaceONNX
    from insightface.model_zoo.scrfd import SCRFD

    assert isinstance(fixture_analyzer.detector.model, SCRFD)
    assert isinstance(fixture_analyzer.recognizer.model, ArcFaceONNX)
    assert fixture_analyzer.providers == {"detection": "CPUExecutionProvider", "recognition": "CPUExecutionProvider"}


def test_missing_pack_is_reported_without_download(tmp_path, no_download):
    with pytest.raises(FaceModelError, match=r"not found: folder .*models/antelopev2 does not exist"):
        load_face_analyzer(tmp_path)


def test_nested_pack_says_move_up(face_pack_root, tmp_path, no_download):
    _copy_pack(face_pack_root, tmp_path, "models/antelopev2/antelopev2")
    with pytest.raises(FaceModelError, match=r"nested one folder too deep.*mv "):
        load_face_analyzer(tmp_path)


def test_pack_without_models_level(face_pack_root, tmp_path):
    _copy_pack(face_pack_root, tmp_path, "antelopev2")
    with pytest.raises(FaceModelError, match=r"was found at .*antelopev2, but it must be at .*models/antelopev2"):
        locate_model_pack(tmp_path)


def test_empty_folder_and_empty_file(tmp_path):
    pack = tmp_path / "models" / "buffalo_l"
    pack.mkdir(parents=True)
    with pytest.raises(FaceModelError, match=r"has no \.onnx files.*det_10g\.onnx"):
        locate_model_pack(tmp_path, "buffalo_l")
    (pack / "det_10g.onnx").write_bytes(b"")
    with pytest.raises(FaceModelError, match=r"\['det_10g\.onnx'\] .* are empty"):
        locate_model_pack(tmp_path, "buffalo_l")


def test_missing_detector_is_not_a_bare_assert(face_pack_root, tmp_path, no_download):
    _copy_pack(face_pack_root, tmp_path, keep="recognizer")
    with pytest.raises(FaceModelError, match=r"no face detection model \(expected scrfd_10g_bnkps\.onnx\)"):
        load_face_analyzer(tmp_path)


def test_missing_recognizer(face_pack_root, tmp_path, no_download):
    _copy_pack(face_pack_root, tmp_path, keep="detector")
    with pytest.raises(FaceModelError, match=r"no face recognition model \(expected glintr100\.onnx\)"):
        load_face_analyzer(tmp_path)


def test_corrupt_file(face_pack_root, tmp_path):
    pack = _copy_pack(face_pack_root, tmp_path)
    (pack / "glintr100.onnx").write_bytes(b"not an onnx file")
    with pytest.raises(FaceModelError, match="download the antelopev2 pack again"):
        load_face_analyzer(tmp_path)


def test_both_onnxruntime_distributions_detected():
    assert onnxruntime_install_problem(["onnxruntime"]) is None
    msg = onnxruntime_install_problem(["onnxruntime", "onnxruntime-gpu"])
    assert "pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu" in msg


def test_broken_onnxruntime_install_warns_on_load(face_pack_root, monkeypatch):
    import anyphoto_core.faces.runtime as runtime

    monkeypatch.setattr(runtime, "installed_onnxruntime_distributions", lambda: ["onnxruntime", "onnxruntime-gpu"])
    with pytest.warns(RuntimeWarning, match="several onnxruntime distributions"):
        load_face_analyzer(face_pack_root)
