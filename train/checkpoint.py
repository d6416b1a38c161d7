"""Atomic, resumable training checkpoints.

A checkpoint is a folder ``<output>/checkpoints/step-<N>/`` holding ``adapter.safetensors``
(:meth:`AnyPhotoAdapter.save`, the file the nodes load), ``optimizer.pt`` and ``scheduler.pt``
(``torch.save`` state dicts of tensors and numbers, read back with ``weights_only=True``),
``rng.pt`` (python, numpy and torch RNG states) and ``state.json`` (step, data position, config).
It is written into ``step-<N>.tmp-<pid>/`` and renamed into place; then ``latest`` (a text file
naming the folder) is replaced atomically. A crash at any point leaves the previous checkpoint and
``latest`` intact.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from anyphoto_core.adapter import AnyPhotoAdapter, load_adapter


class CheckpointError(ValueError):
    """A checkpoint folder that cannot be resumed from; the message says what is missing."""


def rng_state() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    np.random.set_state(tuple(state["numpy"]))
    torch.set_rng_state(state["torch"])


def save_checkpoint(
    root: str | Path, step: int, adapter: AnyPhotoAdapter, optimizer, scheduler, state: dict, keep: int = 2
) -> Path:
    """Write checkpoint ``step`` atomically under ``root``; keep the newest ``keep`` (>= 1) ones."""
    if keep < 1:
        raise ValueError(f"keep must be >= 1 (keep={keep} would delete the checkpoint just written)")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:08d}"
    tmp = root / f"{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    adapter.save(tmp / "adapter.safetensors", {"training_step": str(step)})
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    rng = rng_state()
    rng["numpy"] = [rng["numpy"][0], torch.from_numpy(rng["numpy"][1].astype(np.int64)), *rng["numpy"][2:]]
    torch.save(rng, tmp / "rng.pt")
    (tmp / "state.json").write_text(json.dumps({**state, "step": step}, indent=1))
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    pointer = root / "latest.tmp"
    pointer.write_text(final.name)
    os.replace(pointer, root / "latest")
    old = sorted(p for p in root.glob("step-*") if p.is_dir() and ".tmp-" not in p.name)
    for p in old[: max(0, len(old) - keep)]:
        shutil.rmtree(p, ignore_errors=True)
    return final


def latest_checkpoint(root: str | Path) -> Path | None:
    """The folder ``latest`` names, or None when there is no checkpoint yet."""
    pointer = Path(root) / "latest"
    if not pointer.is_file():
        return None
    path = Path(root) / pointer.read_text().strip()
    if not path.is_dir():
        raise CheckpointError(f"{pointer} names {path.name}, which does not exist; delete {pointer} or restore it")
    return path


def load_checkpoint(path: str | Path, adapter: AnyPhotoAdapter, optimizer, scheduler) -> dict:
    """Restore adapter, optimizer, scheduler and RNG states in place; returns ``state.json``."""
    path = Path(path)
    needed = ("adapter.safetensors", "optimizer.pt", "scheduler.pt", "rng.pt", "state.json")
    missing = [n for n in needed if not (path / n).is_file()]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {missing}; it is not a complete AnyPhoto checkpoint")
    loaded = load_adapter(path / "adapter.safetensors")
    adapter.load_tensors(loaded.adapter_state_dict(), str(path))
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=True))
    rng = torch.load(path / "rng.pt", weights_only=True)
    rng["numpy"] = (rng["numpy"][0], rng["numpy"][1].numpy().astype(np.uint32), *rng["numpy"][2:])
    set_rng_state(rng)
    return json.loads((path / "state.json").read_text())
