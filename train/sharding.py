"""Sharding the frozen FLUX transformer across the training processes (``model.shard_flux``), torch FSDP2.

What fills a 24-48 GB card is the frozen transformer (FLUX.1-dev: 11.9 B parameters, 22.17 GiB in bf16), not
the trained adapter (< 1 GB with its AdamW state). So the adapter stays under accelerate's DDP, and FLUX's
weights are split with ``torch.distributed.fsdp.fully_shard`` (FSDP2), applied here, outside accelerate.

Granularity: one ``fully_shard`` per ``nn.Linear`` (the modules that hold all but about 20 k of FLUX's
parameters). The core's block forwards (:mod:`anyphoto_core.blocks`) call a block's submodules, never the
block's ``forward``, so an FSDP unit per block would never see its pre-forward hook fire, and gathering a
block by hand (``unshard``/``reshard``) would have to be mirrored in the backward pass and in the recompute of
gradient checkpointing. Each linear is *called*, so FSDP2's own hooks gather its weight before its forward
(and before the checkpoint recompute) and free it after. The cost is more, smaller collectives (about 310
all-gathers per forward for FLUX.1-dev) for the same bytes; the RMSNorm scales (128 values each) stay
replicated.

Gradient checkpointing is required (:func:`train.config.validate`). The core adds the LoRA delta in place on a
linear's output (``y[:, n:] += delta``, so the image stream is never copied); that output is a view, and the
in-place op drops the hook FSDP2 puts on it to gather the weight again for the backward pass. Without
checkpointing the backward then reads a freed weight and stops with a storage error; with checkpointing the
block is recomputed in the backward pass, which gathers every linear again, and FSDP2 keeps them gathered
until their backward has run. Since FSDP2 does not reshard during that recompute, the trainer frees what is
still gathered after each backward (:func:`reshard_gathered`). Peak weight memory per process: ``FLUX /
world`` plus one gathered block during its recompute (at most 0.63 GiB in bf16 for FLUX.1-dev). The
parameters are frozen (``requires_grad=False``), so FSDP2 never reduce-scatters a gradient for them (tested).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from .config import ConfigError


def check_sharding_setup(accelerator) -> None:
    """:class:`ConfigError` unless ``model.shard_flux`` can run in this launch: several processes under
    accelerate's DDP (not its FSDP/DeepSpeed engines, which would wrap the adapter instead). The static
    requirement (gradient checkpointing) is checked with the config (:func:`train.config.validate`)."""
    from accelerate.utils import DistributedType

    problems = []
    try:
        from torch.distributed.fsdp import FSDPModule, fully_shard  # noqa: F401 - public FSDP2 API since torch 2.6
    except ImportError:
        problems.append(f"it needs torch's FSDP2 (torch >= 2.6; tested with 2.14), this is torch {torch.__version__}")
    if accelerator.num_processes < 2:
        problems.append(
            "it needs at least 2 processes to split FLUX across (accelerate launch --multi_gpu --num_processes N); "
            "with one process set model.shard_flux=false"
        )
    if accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED):
        problems.append(
            f"accelerate runs {accelerator.distributed_type.value}, but the adapter must stay under DDP: launch with "
            "--multi_gpu (or train/configs/accelerate/multi_node.yaml), not an FSDP or DeepSpeed config"
        )
    if problems:
        raise ConfigError("model.shard_flux=true cannot run: " + "; ".join(problems))


#: FSDP2's warning that a wrapped module returned a view, on which an in-place op drops its backward gather:
#: the core's in-place LoRA add does that, and the checkpoint recompute gathers the weight instead.
_VIEW_WARNING = r"FSDP2-wrapped module \(FSDPLinear\) returned a view tensor"


def shard_linears(model: nn.Module, device: torch.device) -> int:
    """Shard every ``nn.Linear`` of ``model`` (in place, dim 0, over all processes of the default process
    group) onto ``device``, and move the remaining parameters and buffers there; returns the number of
    sharded linears. ``model`` may be on the CPU: each linear is moved and split one at a time, so ``device``
    never holds more than its shards plus one full linear."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    for linear in linears:
        fully_shard(linear, mesh=mesh, reshard_after_forward=True)  # explicit: each linear is its own FSDP root
    warnings.filterwarnings("ignore", message=_VIEW_WARNING, category=UserWarning)
    with torch.no_grad():  # the RMSNorm scales (and any buffer): small, replicated on every process
        for module in model.modules():
            if not isinstance(module, nn.Linear):
                for param in module.parameters(recurse=False):
                    param.data = param.data.to(device)
                for name, buffer in module.named_buffers(recurse=False):
                    module._buffers[name] = buffer.to(device)
    return len(linears)


def reshard_gathered(model: nn.Module) -> None:
    """Free every sharded weight that is still gathered after a backward pass.

    FSDP2 does not reshard during the backward-pass recompute of gradient checkpointing; it frees those
    weights in each linear's post-backward hook. A linear whose input needs no gradient (each double block's
    text modulation, the first block's text QKV) has no such hook, so without this call its weight would stay
    gathered until its next forward (for FLUX.1-dev about 2 GB per process)."""
    from torch.distributed.fsdp import FSDPModule

    for module in model.modules():
        if isinstance(module, FSDPModule):
            module.reshard()
