"""Resumable checkpoints of the world-model scripts (VAE, recognizer, base transformer).

``<out>/checkpoint/``: ``model.safetensors`` (weights), ``optimizer.pt`` (``torch.save`` state dict of
tensors and numbers, read back with ``weights_only=True``), ``state.json`` (step, seconds trained).
Written into a temporary folder and renamed into place, so a crash keeps the previous checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def save_weights(model: torch.nn.Module, path: Path) -> None:
    """``model``'s state dict as safetensors at ``path`` (CPU copies, so a model trained on a GPU saves too)."""
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(path))


def save_state(out: Path, step: int, model: torch.nn.Module, optimizer, seconds: float) -> None:
    final = Path(out) / "checkpoint"
    tmp = Path(out) / f"checkpoint.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_weights(model, tmp / "model.safetensors")
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    (tmp / "state.json").write_text(json.dumps({"step": step, "seconds": seconds}))
    old = Path(out) / "checkpoint.old"
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def load_state(out: Path, model: torch.nn.Module, optimizer) -> tuple[int, float]:
    """Restore the checkpoint under ``out`` if there is one; returns ``(step, seconds)`` (0, 0 without)."""
    folder = Path(out) / "checkpoint"
    if not (folder / "state.json").is_file():
        return 0, 0.0
    model.load_state_dict(load_file(str(folder / "model.safetensors")))
    optimizer.load_state_dict(torch.load(folder / "optimizer.pt", weights_only=True))
    state = json.loads((folder / "state.json").read_text())
    return int(state["step"]), float(state["seconds"])


def train_loop(out: Path, model, optimizer, steps: int, step_fn, desc: str, checkpoint_every: int = 100) -> float:
    """Run ``step_fn(step) -> {name: float}`` from the checkpointed step up to ``steps`` with a progress bar,
    checkpointing every ``checkpoint_every`` steps and at the end; logs to ``<out>/log.jsonl``.
    Returns the total seconds trained (over all resumed sessions)."""
    import time

    from tqdm.auto import tqdm

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start_step, seconds = load_state(out, model, optimizer)
    bar = tqdm(total=steps, initial=start_step, desc=desc)
    with open(out / "log.jsonl", "a") as log:
        for step in range(start_step, steps):
            t0 = time.perf_counter()
            terms = step_fn(step)
            seconds += time.perf_counter() - t0
            bar.update(1)
            bar.set_postfix({k: f"{v:.4f}" for k, v in terms.items()})
            if (step + 1) % 10 == 0:
                log.write(json.dumps({"step": step + 1, "seconds": round(seconds, 2), **terms}) + "\n")
                log.flush()
            if (step + 1) % checkpoint_every == 0 or step + 1 == steps:
                save_state(out, step + 1, model, optimizer, seconds)
    bar.close()
    return seconds
