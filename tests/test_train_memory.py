"""The memory meter of benchmarks/train_memory.py: exact on known allocations, equal to torch's own MemTracker,
the same bytes on the meta device as on the CPU; and the benchmark's step is the trainer's objective."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from _common import peak_bytes  # noqa: E402
from train_memory import StepModels, flash_attention_on_meta, memory_case, step_loss, train_step  # noqa: E402

from anyphoto_core.app.models.tiny import TINY_FLUX, TINY_VAE_CONFIG  # noqa: E402

MIB = 1 << 20


def tiny_recognizer() -> torch.nn.Module:
    """(B, 3, 112, 112) -> (B, 512), cheap (the benchmark itself uses IResNet-100)."""
    return torch.nn.Sequential(torch.nn.AvgPool2d(8), torch.nn.Flatten(), torch.nn.Linear(3 * 14 * 14, 512))


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_meter_counts_known_allocations_once_and_not_prior_weights(device):
    weight = torch.ones(1024, 1024, device=device)  # 4 MiB that existed before: not counted

    def allocate():
        a = torch.empty(MIB // 4, device=device)  # 1 MiB
        views = [a.view(-1, 2), a[:10], a.view(512, 512).T]  # noqa: F841  views share the storage: counted once
        del a, views
        b = torch.empty(MIB // 2, device=device)  # 2 MiB after the first was freed: peak 2 MiB, not 3
        x = b[:8192].view(8, 1024)
        return torch.nn.functional.linear(x, weight), weight.t()[:3]  # a 32 KiB output; views of the weight
        # (linear's weight.t(), the slice) allocate nothing

    assert peak_bytes(allocate, torch.device(device)) == 2 * MIB + 8 * 1024 * 4


def test_meter_equals_torch_memtracker_on_a_training_step():
    """Independent reference: torch.distributed._tools.mem_tracker.MemTracker on the same step."""
    from torch.distributed._tools.mem_tracker import MemTracker

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.GELU(), torch.nn.Linear(256, 64))
    opt = torch.optim.AdamW(net.parameters())

    def step():
        net(torch.randn(32, 64)).square().mean().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    ours = peak_bytes(step, torch.device("cpu"))
    tracker = MemTracker()
    with tracker:
        step()
    weights = sum(p.numel() * p.element_size() for p in net.parameters())  # MemTracker counts them, we do not
    theirs = tracker.get_tracker_snapshot("peak")[torch.device("cpu")]["Total"] - weights
    assert ours > 256 * 1024 and abs(ours - theirs) <= 1024  # they differ by a few scalar tensors


@pytest.mark.parametrize("checkpoint", [False, True])
def test_meta_step_allocates_what_the_cpu_step_allocates(checkpoint):
    """Tiny FLUX and VAE, two identities at 256^2, face loss on windowed crops: the meta step (no arithmetic,
    CPU SDPA's kernel on meta) allocates the same bytes as the CPU step (SDPA's own meta choice, the math
    path, would keep every attention score)."""
    peaks = {}
    for device in ("cpu", "meta"):
        torch.manual_seed(0)
        dev = torch.device(device)
        with flash_attention_on_meta():
            m = StepModels(TINY_FLUX, dev, TINY_VAE_CONFIG, tiny_recognizer())
            case = memory_case(256, 2, dev, TINY_FLUX)
            train_step(m, case, checkpoint)  # AdamW state
            peaks[device] = peak_bytes(lambda m=m, case=case: train_step(m, case, checkpoint), dev)
    assert peaks["cpu"] > MIB
    # equal to 0.1 % (measured: meta 24 KB above CPU out of 131 MiB, small-tensor differences of the kernels)
    assert abs(peaks["meta"] - peaks["cpu"]) <= 1e-3 * peaks["cpu"]


def test_benchmark_step_is_the_trainer_objective():
    """``step_loss`` equals ``AnyPhotoObjective`` (the trainer's loss) on the same models and sample."""
    from dataclasses import replace

    from train.config import TrainConfig
    from train.models import FrozenModels
    from train.trainer import AnyPhotoObjective

    torch.manual_seed(0)
    cpu = torch.device("cpu")
    m = StepModels(TINY_FLUX, cpu, TINY_VAE_CONFIG, tiny_recognizer())
    m.flux.float()
    for p in m.adapter.parameters():  # the adapter starts at an exact zero offset/delta: make it matter
        torch.nn.init.normal_(p, std=0.05)
    sample, t, _ = memory_case(256, 2, cpu, TINY_FLUX)
    random = {name: torch.randn_like(getattr(sample, name)) for name in ("x0", "txt", "reference", "embeddings")}
    sample = replace(sample, **random)
    noise = torch.randn_like(sample.x0)
    config = TrainConfig()
    config.model.gradient_checkpointing, config.loss.face_t_max = False, 1.0
    objective = AnyPhotoObjective(m.adapter, FrozenModels(m.flux, m.vae, None, m.recognizer), config)
    expected = objective(sample, t, noise)["loss"]
    torch.testing.assert_close(step_loss(m, sample, t, noise, checkpoint=False), expected)
    without_face = step_loss(m, sample, t, noise, checkpoint=False, face_weight=0.0)
    assert not torch.isclose(without_face, expected)  # the face term is there and matters
