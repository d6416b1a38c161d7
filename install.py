"""ComfyUI-Manager install hook: the right onnxruntime flavour and insightface without conflicts.

insightface's wheel depends on the CPU ``onnxruntime`` distribution; installed next to
``onnxruntime-gpu`` the two overwrite each other's files. So: keep whichever flavour is already
installed; otherwise pick ``onnxruntime-gpu`` when torch sees CUDA, else ``onnxruntime``; then install
insightface with ``--no-deps`` (its other dependencies are in requirements.txt).
"""

import importlib.metadata
import subprocess
import sys


def _installed(dist: str) -> bool:
    try:
        importlib.metadata.version(dist)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def _pip(*args: str) -> None:
    subprocess.check_call([sys.executable, "-m", "pip", "install", *args])


def main() -> None:
    have_gpu, have_cpu = _installed("onnxruntime-gpu"), _installed("onnxruntime")
    if have_gpu and have_cpu:
        print(
            "[AnyPhoto] both onnxruntime and onnxruntime-gpu are installed; they conflict. Fix: "
            "pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu"
        )
    elif not (have_gpu or have_cpu):
        try:
            import torch

            cuda = torch.cuda.is_available()
        except ImportError:
            cuda = False
        _pip("onnxruntime-gpu" if cuda else "onnxruntime")
    if not _installed("insightface"):
        _pip("--no-deps", "insightface>=2.1")


if __name__ == "__main__":
    main()
