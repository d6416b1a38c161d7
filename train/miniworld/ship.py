"""Copy trained MiniWorld models into the shipped folder (``anyphoto_core/app/models/miniworld_models``)
and record their provenance (command, seed, commit, wall time, sha256) in ``provenance.json``."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image

from anyphoto_core.app.models.miniworld import MINIWORLD_DIR

from .world import WorldSpec, people, reference_photo

#: Demo: two held-out people (index among the held-out split, reference photo number), their boxes
#: (fractions of the picture) and the prompt; chosen to look unlike each other.
DEMO = {
    "people": [(0, 0, [0.06, 0.22, 0.44, 0.70]), (1, 1, [0.56, 0.22, 0.94, 0.70])],
    "prompt": "watercolour, two people",
}


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def record(dest: Path, name: str, command: str, seed: int, info: dict) -> None:
    """Add (or replace) the provenance entry of ``dest / name``."""
    prov_path = dest / "provenance.json"
    prov = json.loads(prov_path.read_text()) if prov_path.is_file() else {}
    prov[name] = {"command": command, "seed": seed, "commit": _commit(), "sha256": _sha256(dest / name), **info}
    prov_path.write_text(json.dumps(prov, indent=1, sort_keys=True) + "\n")


def ship_file(src: Path, dest: Path, name: str, command: str, seed: int, info: dict | None = None) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest / name)
    record(dest, name, command, seed, info or {})
    return dest / name


def ship_world_models(runs: Path, dest: Path = MINIWORLD_DIR) -> None:
    """VAE (+ config), base transformer and recognizer from ``runs/{vae,base,recognizer}``; the VAE from
    ``runs/vae-local`` instead when ``localize-vae`` has been run."""
    local = (runs / "vae-local" / "vae.safetensors").is_file()
    for sub, files, cmd in (
        (
            "vae-local" if local else "vae",
            ("vae.safetensors", "vae.json"),
            f"python -m train.miniworld {'localize-vae' if local else 'train-vae'}",
        ),
        ("base", ("flux.safetensors",), "python -m train.miniworld train-base"),
        ("recognizer", ("recognizer.onnx",), "python -m train.miniworld train-recognizer"),
    ):
        meta = runs / sub / f"{Path(files[0]).stem}.json"
        info = json.loads(meta.read_text()) if meta.is_file() else {}
        info = {k: v for k, v in info.items() if k != "config"}
        if "steps" in info:
            cmd += f" --steps {info['steps']} --seed {info.get('seed', 0)}"
        if "hidden" in info:  # bases trained since train-base took a width, depth, batch and device
            cmd += f" --hidden {info['hidden']} --depth {info['depth']} --single-depth {info['single_depth']}"
            cmd += f" --batch {info['batch']} --device {info['device']}"
        if info.get("init"):
            cmd += f" --init {info['init']}"
        for name in files:
            ship_file(runs / sub / name, dest, name, cmd, int(info.get("seed", 0)), info)


def write_demo(dest: Path = MINIWORLD_DIR, spec: WorldSpec = WorldSpec()) -> Path:
    """Reference photos (+ exact landmarks) of the demo's held-out people and ``demo/demo.json``."""
    heldout = [p for p in people(spec) if p.split == "heldout"]
    folder = dest / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for index, k, box in DEMO["people"]:
        scene = reference_photo(spec, heldout[index], k)
        name = f"{heldout[index].name}_{k}.png"
        Image.fromarray(scene.image).save(folder / name)
        write_landmarks(folder / name, scene.landmarks[0])
        entries.append({"photo": name, "landmarks": scene.landmarks[0].round(3).tolist(), "box": box})
    spec_path = folder / "demo.json"
    spec_path.write_text(json.dumps({"people": entries, "prompt": DEMO["prompt"], "size": [spec.size] * 2}, indent=1))
    return spec_path


def write_landmarks(photo: Path, landmarks: np.ndarray) -> Path:
    """Sidecar ``<photo>.landmarks.json`` (5 points, ArcFace order), read by ``anyphoto generate``."""
    path = photo.with_suffix(".landmarks.json")
    path.write_text(json.dumps({"landmarks": np.asarray(landmarks).round(3).tolist()}))
    return path


def ship_adapter(run: Path, ablation: str | None, isolate: bool, command: str, dest: Path = MINIWORLD_DIR) -> Path:
    """The adapter of training run ``run`` as the main adapter, or as ablation row ``ablation``
    (``ablations/<name>.safetensors``, listed in ``ablations/ablations.json`` with its ``isolate`` flag)."""
    src = Path(run) / "anyphoto_adapter.safetensors"
    state = sorted((Path(run) / "checkpoints").glob("step-*/state.json"))
    info = {"run": str(run)}
    if state:
        info["steps"] = json.loads(state[-1].read_text())["step"]
    if ablation is None:
        return ship_file(src, dest, "adapter.safetensors", command, 0, info)
    folder = dest / "ablations"
    path = ship_file(src, folder, f"{ablation}.safetensors", command, 0, info)
    index_path = folder / "ablations.json"
    index = json.loads(index_path.read_text()) if index_path.is_file() else {}
    index[ablation] = {"file": f"{ablation}.safetensors", "isolate": isolate}
    index_path.write_text(json.dumps(index, indent=1, sort_keys=True) + "\n")
    return path
