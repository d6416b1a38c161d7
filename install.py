"""ComfyUI-Manager install hook: onnxruntime, OpenCV and insightface without conflicting builds.

* onnxruntime: insightface's wheel depends on the CPU ``onnxruntime`` distribution; installed next
  to ``onnxruntime-gpu`` the two overwrite each other's files. So keep whichever flavour is
  installed; otherwise pick ``onnxruntime-gpu`` when torch sees CUDA, else ``onnxruntime``.
* OpenCV: four distributions (``opencv-python``, ``-headless``, ``-contrib``, ``-contrib-headless``)
  all install the same ``cv2`` package and break each other when mixed. Keep the one installed;
  with none, install ``opencv-python``, the build insightface declares, so ``pip check`` is clean.
  When another build is kept, ``pip check`` names insightface's ``opencv-python``; that is harmless
  (same ``cv2``) and this script says so rather than installing a second build.
* insightface: with ``--no-deps`` (its other dependencies are in requirements.txt).
"""

import importlib.metadata
import subprocess
import sys

ONNXRUNTIME_DISTRIBUTIONS = ("onnxruntime", "onnxruntime-gpu")
OPENCV_DISTRIBUTIONS = (
    "opencv-python",
    "opencv-python-headless",
    "opencv-contrib-python",
    "opencv-contrib-python-headless",
)
OPENCV_REQUIREMENT = "opencv-python>=4.8"
INSIGHTFACE_REQUIREMENT = "insightface>=2.1"


def _installed(dist: str) -> bool:
    try:
        importlib.metadata.version(dist)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def _pip(*args: str) -> None:
    subprocess.check_call([sys.executable, "-m", "pip", "install", *args])


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def ensure_onnxruntime() -> None:
    present = [d for d in ONNXRUNTIME_DISTRIBUTIONS if _installed(d)]
    if len(present) > 1:
        print(
            "[AnyPhoto] both onnxruntime and onnxruntime-gpu are installed; they conflict. Fix: "
            "pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu"
        )
    elif not present:
        _pip("onnxruntime-gpu" if _has_cuda() else "onnxruntime")
    if _installed("onnxruntime-gpu") and not _installed("onnxruntime"):
        print(
            "[AnyPhoto] note: `pip check` reports insightface's requirement 'onnxruntime' as missing because the "
            "GPU build onnxruntime-gpu provides it; that is expected, do not install both."
        )


def ensure_opencv() -> None:
    present = [d for d in OPENCV_DISTRIBUTIONS if _installed(d)]
    if not present:
        _pip(OPENCV_REQUIREMENT)
    elif len(present) > 1:
        print(
            f"[AnyPhoto] several OpenCV builds are installed ({', '.join(present)}); they overwrite each other's "
            f"cv2 files. Fix: pip uninstall -y {' '.join(present)} && pip install {OPENCV_REQUIREMENT}"
        )
    elif present != ["opencv-python"]:
        print(
            f"[AnyPhoto] keeping the installed OpenCV build {present[0]}. `pip check` will say insightface requires "
            "opencv-python; that is harmless (both provide the same cv2 module) and installing it as well would "
            "make two builds overwrite each other."
        )


def main() -> None:
    ensure_onnxruntime()
    ensure_opencv()
    if not _installed("insightface"):
        _pip("--no-deps", INSIGHTFACE_REQUIREMENT)


if __name__ == "__main__":
    main()
