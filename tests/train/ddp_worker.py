"""Worker for ``test_two_cpu_processes_agree``: ``accelerate launch --num_processes 2 --cpu ddp_worker.py OUT
OVERRIDES...`` trains the tiny config and writes this rank's adapter tensors to ``OUT/rank<i>.safetensors``
and the initial ones to ``OUT/initial.safetensors`` (rank 0), and its logged terms per step to
``OUT/history<i>.json``. With ``model.shard_flux=true`` it also writes ``OUT/sharding<i>.json``: each FLUX
parameter's placement and local size, and the collectives (``c10d`` ops) counted during ``fit``."""

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch.utils._python_dispatch import TorchDispatchMode

from train.config import load_config
from train.trainer import Trainer


def _tensors(trainer) -> dict:
    return {k: v.detach().cpu().contiguous().clone() for k, v in trainer.adapter.adapter_state_dict().items()}


class CollectiveCounter(TorchDispatchMode):
    """Counts the ``c10d`` operators (all-gathers, reduce-scatters, ...) dispatched while it is active.

    (torch's ``CommDebugMode`` also installs global module backward hooks, which wrap every module output in a
    custom autograd function and so forbid the core's in-place LoRA add; this counter only watches ops.)"""

    def __init__(self):
        super().__init__()
        self.counts: dict[str, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.namespace == "c10d":
            name = func.overloadpacket.__name__
            self.counts[name] = self.counts.get(name, 0) + 1
        return func(*args, **(kwargs or {}))


def _placements(flux) -> dict:
    """``{name: {"placements": [...] or None (plain tensor), "local": numel here, "global": numel}}``."""
    from torch.distributed.tensor import DTensor  # public since torch 2.5; only sharded runs need it

    return {
        name: {
            "placements": [str(p) for p in w.placements] if isinstance(w, DTensor) else None,
            "local": w.to_local().numel() if isinstance(w, DTensor) else w.numel(),
            "global": w.numel(),
        }
        for name, w in flux.named_parameters()
    }


def main(out: str, config: str, *overrides: str) -> None:
    torch.set_num_threads(1)
    trainer = Trainer(load_config(config, list(overrides)))
    rank, out = trainer.accelerator.process_index, Path(out)
    if rank == 0:
        save_file(_tensors(trainer), str(out / "initial.safetensors"))
    if trainer.config.model.shard_flux:
        with CollectiveCounter() as collectives:
            history = trainer.fit()
        report = {"parameters": _placements(trainer.models.flux), "collectives": collectives.counts}
        (out / f"sharding{rank}.json").write_text(json.dumps(report))
    else:
        history = trainer.fit()
    (out / f"history{rank}.json").write_text(json.dumps(history))
    save_file(
        _tensors(trainer),
        str(out / f"rank{rank}.safetensors"),
        metadata={
            "world": str(trainer.accelerator.num_processes),
            "global_batch": str(trainer.global_batch),
            "wrapper": type(trainer.objective).__name__,
        },
    )
    trainer.accelerator.wait_for_everyone()


if __name__ == "__main__":
    main(*sys.argv[1:])
