"""The training loop on tiny models and real photos: learning, gradients, resume, atomic saves, export."""

from pathlib import Path

import pytest
import torch

from anyphoto_core.adapter import load_adapter
from anyphoto_core.conditioning import identity_batch
from train import checkpoint as ckpt_module
from train.models import checkpointed_anyphoto_forward
from train.trainer import Trainer, TrainingDivergedError


def _params(trainer):
    return {k: v.detach().clone() for k, v in trainer.adapter.adapter_state_dict().items()}


def _eval_loss(tr, samples):
    with torch.no_grad():
        return sum(tr.objective(s, t, n)["loss"].item() for s, t, n in samples) / len(samples)


def test_loss_falls(tiny_config):
    """Fixed seed; the loss on fixed (sample, t, noise) triples falls after a dozen steps."""
    tr = Trainer(tiny_config("run.steps=12", "optim.lr=1e-2", "data.id_dropout=0.0"))
    g = torch.Generator().manual_seed(123)
    fixed = []
    for pos in range(2):
        s = tr.prepare(tr.data.build(pos, 0, augment=False))
        fixed += [(s, torch.tensor([t]), torch.randn(s.x0.shape, generator=g)) for t in (0.3, 0.7)]
    before = _eval_loss(tr, fixed)
    history = tr.fit()
    after = _eval_loss(tr, fixed)
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in history)
    assert after < before - 0.01, (before, after)


def test_face_loss_gradient_reaches_projector_and_lora(tiny_config):
    cfg = tiny_config("data.id_dropout=0.0", "loss.face_weight=1.0")
    tr = Trainer(cfg)
    with torch.no_grad():  # LoRA B starts at zero (so A gets no gradient); move it off zero
        for k, v in tr.adapter.adapter_state_dict().items():
            if k.endswith("lora_B.weight"):
                v.normal_(0, 0.05)
    sample = tr.data.build(0, 0)
    s = tr.prepare(sample)
    noise = torch.randn(s.x0.shape, generator=torch.Generator().manual_seed(0))
    out = tr.objective(s, torch.tensor([0.3]), noise)
    tr.adapter.zero_grad()
    out["face"].backward()
    grads = {n: p.grad for n, p in tr.adapter.named_parameters()}
    assert grads["projector.0.weight"].abs().sum() > 0
    lora = [g for n, g in grads.items() if "lora_" in n]
    assert lora and all(g is not None and g.abs().sum() > 0 for g in lora)


def test_checkpointed_forward_equals_core(tiny_config):
    tr = Trainer(tiny_config("data.id_dropout=0.0"))
    with torch.no_grad():
        for k, v in tr.adapter.adapter_state_dict().items():
            if k.endswith("lora_B.weight") or k.startswith("projector.2"):
                v.normal_(0, 0.05)
    s = tr.prepare(tr.data.build(0, 0))
    flux = tr.models.flux

    def run(fn):
        tr.adapter.zero_grad()
        ids = identity_batch(s.tokens, tr.adapter.modulation_offsets(s.embeddings), 1)
        args = (s.x0, s.img_ids, s.txt, torch.zeros(1, s.txt.shape[1], 3), torch.tensor([0.4]), s.y,
                torch.tensor([1.0]), ids)
        out = fn(*args, lora_delta=tr.adapter.lora_delta)
        out.square().mean().backward()
        return out.detach(), {n: p.grad.clone() for n, p in tr.adapter.named_parameters()}

    ref, ref_g = run(flux.forward_anyphoto)
    got, got_g = run(lambda *a, **k: checkpointed_anyphoto_forward(flux, *a, **k))
    torch.testing.assert_close(got, ref, rtol=0, atol=0)
    for n in ref_g:
        torch.testing.assert_close(got_g[n], ref_g[n], rtol=1e-6, atol=1e-9)


def test_resume_is_exact(tiny_config, tmp_path):
    n = 6
    full = Trainer(tiny_config(f"run.steps={n}", "optim.accumulation=2", f"run.output={tmp_path / 'a'}"))
    full.fit()
    first = Trainer(tiny_config(f"run.steps={n}", "optim.accumulation=2", f"run.output={tmp_path / 'b'}"))
    first.fit(n // 2)
    first.save()
    second = Trainer(tiny_config(f"run.steps={n}", "optim.accumulation=2", f"run.output={tmp_path / 'b'}"))
    assert second.resume() and second.step == n // 2
    second.fit()
    a, b = _params(full), _params(second)
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=0)


def test_crash_during_save_keeps_previous_checkpoint(tiny_config, tmp_path, monkeypatch):
    tr = Trainer(tiny_config("run.steps=2", f"run.output={tmp_path}"))
    tr.fit(1)
    good = tr.save()
    saved = _params(tr)
    tr.fit(2)

    def boom(*a, **k):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(ckpt_module.torch, "save", boom)
    with pytest.raises(OSError, match="simulated"):
        tr.save()
    monkeypatch.undo()
    assert ckpt_module.latest_checkpoint(tmp_path / "checkpoints") == good
    fresh = Trainer(tiny_config("run.steps=2", f"run.output={tmp_path}"))
    assert fresh.resume() and fresh.step == 1
    for k, v in _params(fresh).items():
        torch.testing.assert_close(v, saved[k], rtol=0, atol=0)


def test_nan_loss_stops_with_clear_message(tiny_config, tmp_path):
    tr = Trainer(tiny_config("run.steps=3", f"run.output={tmp_path}"))
    tr.fit(1)
    tr.save()
    with torch.no_grad():
        tr.adapter.projector[0].weight.fill_(float("nan"))
    with pytest.raises(TrainingDivergedError, match="step 1.*last good checkpoint is .*step-00000001"):
        tr.fit(2)


def test_exported_adapter_loads_in_core_and_changes_output(tiny_config, tmp_path):
    tr = Trainer(tiny_config("run.steps=3", "optim.lr=1e-2", "data.id_dropout=0.0"))
    tr.fit()
    path = tr.export(tmp_path / "adapter.safetensors")
    p = tr.models.flux.params
    adapter = load_adapter(path, hidden_size=p.hidden_size, depth=p.depth, depth_single_blocks=p.depth_single_blocks)
    s = tr.prepare(tr.data.build(0, 0, augment=False))
    args = (s.x0, s.img_ids, s.txt, torch.zeros(1, s.txt.shape[1], 3), torch.tensor([0.5]), s.y, torch.tensor([1.0]))
    with torch.no_grad():
        stock = tr.models.flux(*args)
        ids = identity_batch(s.tokens, adapter.modulation_offsets(s.embeddings), 1)
        patched = tr.models.flux.forward_anyphoto(*args, ids, lora_delta=adapter.lora_delta)
        fresh = type(adapter)(adapter.config)  # untrained adapter: LoRA B and projector output are zero
        base = tr.models.flux.forward_anyphoto(*args, identity_batch(s.tokens, fresh.modulation_offsets(s.embeddings), 1),
                                               lora_delta=fresh.lora_delta)
    assert (patched - stock).abs().max() > 1e-4
    assert (patched - base).abs().max() > 1e-5  # the trained weights matter beyond the canvas tokens
    assert Path(path).stat().st_size > 0
