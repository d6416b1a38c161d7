"""Finding an insightface model pack on disk (``<root>/models/<name>/*.onnx``) and diagnosing broken installs.

``root`` is ComfyUI's ``models/insightface`` folder (the ecosystem convention). Everything here
only looks at the file system: a pack that fails these checks never reaches insightface, so
insightface never tries to download it.
"""

from __future__ import annotations

from pathlib import Path

from .errors import FaceModelError

#: Detector and recognizer file of the known packs, for messages.
KNOWN_PACKS = {
    "antelopev2": ("scrfd_10g_bnkps.onnx", "glintr100.onnx"),
    "buffalo_l": ("det_10g.onnx", "w600k_r50.onnx"),
}


def _onnx_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.onnx")) if folder.is_dir() else []


def locate_model_pack(root, name: str = "antelopev2") -> Path:
    """Return ``<root>/models/<name>`` after checking it holds non-empty ``.onnx`` files.

    Raises :class:`FaceModelError` saying exactly what to move or download for: a missing folder,
    a pack unzipped one level too deep (``antelopev2/antelopev2/``), a pack put directly under
    ``root`` (no ``models/`` level), an empty folder, empty (interrupted) files.
    """
    root = Path(root).expanduser()
    pack = root / "models" / name
    det, rec = KNOWN_PACKS.get(name, ("<detector>.onnx", "<recognizer>.onnx"))
    how = (
        f"Put the {name} pack's .onnx files (e.g. {det}, {rec}) into {pack}/ so that {pack / det} exists "
        "(ComfyUI: models/insightface/models/<name>/)."
    )
    nested = pack / name
    if _onnx_files(nested) and not _onnx_files(pack):
        raise FaceModelError(
            f"insightface pack {name!r} is nested one folder too deep: the .onnx files are in {nested}/ "
            f"(the zip contains its own {name}/ folder). Fix: move them up one level: "
            f"mv '{nested}'/*.onnx '{pack}/' && rmdir '{nested}'"
        )
    if not pack.is_dir():
        for wrong in (root / name, root / "models" / "models" / name):
            if _onnx_files(wrong):
                raise FaceModelError(f"insightface pack {name!r} was found at {wrong}, but it must be at {pack}. {how}")
        raise FaceModelError(f"insightface pack {name!r} not found: folder {pack} does not exist. {how}")
    files = _onnx_files(pack)
    if not files:
        raise FaceModelError(f"insightface pack folder {pack} has no .onnx files. {how}")
    empty = [f.name for f in files if f.stat().st_size == 0]
    if empty:
        raise FaceModelError(f"model files {empty} in {pack} are empty (interrupted download?); download them again")
    return pack


def missing_task_message(pack: Path, task: str, name: str) -> str:
    """Message for a pack that loaded but has no model of ``task`` ("detection" / "recognition")."""
    det, rec = KNOWN_PACKS.get(name, ("a SCRFD detector .onnx", "an ArcFace recognizer .onnx"))
    wanted = det if task == "detection" else rec
    present = ", ".join(f.name for f in _onnx_files(pack)) or "none"
    return (
        f"insightface pack folder {pack} has no face {task} model (expected {wanted}); files present: {present}. "
        f"Download the complete {name} pack again and unzip it there."
    )
