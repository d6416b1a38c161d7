"""onnxruntime execution providers: which to ask for, which is active, broken installs."""

from __future__ import annotations

import importlib.metadata

import onnxruntime

#: Distributions that each install the ``onnxruntime`` Python package; two of them break each other.
ONNXRUNTIME_DISTRIBUTIONS = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-directml", "onnxruntime-openvino")


def default_providers() -> list[str]:
    """``["CUDAExecutionProvider", "CPUExecutionProvider"]`` when onnxruntime offers CUDA, else CPU only."""
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


def quiet_session_options() -> onnxruntime.SessionOptions:
    """Session options that keep onnxruntime's graph warnings (e.g. initializers listed as inputs) off the console."""
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    return options
