"""onnxruntime execution providers: which to ask for, which is active, broken installs; and the
import of the optional face-analysis packages (insightface, onnxruntime) with the install fix.

The pack imports without insightface, onnxruntime and OpenCV; the first face operation imports them
through :func:`import_face_package`, which says exactly what to install when one is missing.
"""

from __future__ import annotations

import importlib
import importlib.metadata

from .errors import FaceModelError

#: What to run when insightface or onnxruntime is missing (install.py picks the right flavour).
FACE_PACKAGES_FIX = (
    "run `python install.py` in the AnyPhoto folder with ComfyUI's Python (it installs onnxruntime-gpu on "
    "CUDA machines, onnxruntime elsewhere, OpenCV unless one is installed, then insightface without its "
    "conflicting dependencies), or by hand: pip install onnxruntime-gpu (CPU only: onnxruntime) opencv-python "
    "&& pip install --no-deps insightface"
)

#: pip distribution of an import name, where they differ (install.py picks the OpenCV build).
PIP_NAMES = {"cv2": "opencv-python"}


def import_face_package(name: str):
    """Import ``name`` (``"onnxruntime"``, ``"insightface.app"``, ...) or raise :class:`FaceModelError`
    saying which package is missing and how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        missing = (getattr(exc, "name", None) or name).split(".")[0]
        package = PIP_NAMES.get(missing, missing)
        raise FaceModelError(
            f"face analysis needs the Python package {package!r}, which is not installed or does not import "
            f"({exc}). Fix: {FACE_PACKAGES_FIX}"
        ) from None


#: Distributions that each install the ``onnxruntime`` Python package; two of them break each other.
ONNXRUNTIME_DISTRIBUTIONS = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-directml", "onnxruntime-openvino")


def default_providers() -> list[str]:
    """``["CUDAExecutionProvider", "CPUExecutionProvider"]`` when onnxruntime offers CUDA, else CPU only."""
    onnxruntime = import_face_package("onnxruntime")
    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def active_provider(session) -> str:
    """The provider an ``onnxruntime.InferenceSession`` actually runs on (its first provider)."""
    return str(session.get_providers()[0])


def installed_onnxruntime_distributions() -> list[str]:
    """Names of the installed distributions that provide the ``onnxruntime`` package."""
    found = []
    for dist in ONNXRUNTIME_DISTRIBUTIONS:
        try:
            importlib.metadata.distribution(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
        found.append(dist)
    return found


def onnxruntime_install_problem(distributions: list[str] | None = None) -> str | None:
    """A message with the fix when several onnxruntime distributions are installed, else ``None``.

    ``onnxruntime`` and ``onnxruntime-gpu`` write the same files; with both installed the GPU
    provider silently disappears or the import fails.
    """
    dists = installed_onnxruntime_distributions() if distributions is None else list(distributions)
    if len(dists) < 2:
        return None
    keep = "onnxruntime-gpu" if "onnxruntime-gpu" in dists else dists[-1]
    return (
        f"several onnxruntime distributions are installed ({', '.join(dists)}); they overwrite each other and "
        f"the GPU provider goes missing. Fix (in ComfyUI's Python): pip uninstall -y {' '.join(dists)} && "
        f"pip install {keep}"
    )


def quiet_session_options():
    """``onnxruntime.SessionOptions`` that keep onnxruntime's graph warnings (e.g. initializers listed as
    inputs) off the console."""
    options = import_face_package("onnxruntime").SessionOptions()
    options.log_severity_level = 3
    return options
