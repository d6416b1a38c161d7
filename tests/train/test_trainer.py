"""The training loop on tiny models and real photos: learning, gradients, resume, atomic saves, export."""

import os

import pytest
import torch

from anyphoto_core.adapter import load_adapter
from anyphoto_core.conditioning import identity_inputs
from train import checkpoint as ckpt_module
from train.trainer import Trainer, TrainingDivergedError


def _params(trainer):
    return {k: v.detach().clone() for k, v in trainer.adapter.adapter_state_dict().items()}


def _perturb_zero_init(adapter, seed=0):
    """LoRA B and the projector's last layer start at zero (so upstream weights get no gradient): move them."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for k, v in adapter.adapter_state_dict().items():
            if k.endswith("lora_B.weight") or k.startswith("projector.2"):
                v.copy_(torch.randn(v.shape, generator=g) * 0.05)


def _fixed_eval_set(tr, seed=123):
    """Two un-augmented samples x t in {0.3, 0.7}, fixed noise."""
    g = torch.Generator().manual_seed(seed)
    fixed = []
    for pos in range(2):
        s = tr.prepare(tr.data.build(pos, 0, augment=False))
        fixed += [(s, torch.tensor([t]), torch.randn(s.x0.shape, generator=g)) for t in (0.3, 0.7)]
    return fixed


def _eval_loss(tr, fixed, term="loss"):
    with torch.no_grad():
        return sum(tr.objective(s, t, n)[term].item() for s, t, n in fixed) / len(fixed)


def test_loss_falls(tiny_config, frozen_models):
    """25 steps at a high LR: the total loss (flow + face) on a fixed evaluation set falls by > 20 %."""
    tr = Trainer(tiny_config("run.steps=25", "optim.lr=1e-2", "data.id_dropout=0.0"), models=frozen_models)
    fixed = _fixed_eval_set(tr)
    before = _eval_loss(tr, fixed)
    history = tr.fit()
    after = _eval_loss(tr, fixed)
    assert len(history) == 25 and all(torch.isfinite(torch.tensor(h["loss"])) for h in history)
    assert {"flow", "face", "loss"} <= set(history[0])
    assert after < 0.8 * before, (before, after)


def test_face_loss_gradient_reaches_projector_and_lora(tiny_config, frozen_models):
    tr = Trainer(tiny_config("data.id_dropout=0.0", "loss.face_weight=1.0"), models=frozen_models)
    _perturb_zero_init(tr.adapter)
    s = tr.prepare(tr.data.build(0, 0))
    noise = torch.randn(s.x0.shape, generator=torch.Generator().manual_seed(0))
    out = tr.objective(s, torch.tensor([0.3]), noise)
    tr.adapter.zero_grad()
    out["face"].backward()
    grads = {n: p.grad for n, p in tr.adapter.named_parameters()}
    for name in ("projector.0.weight", "projector.2.weight"):
        assert grads[name] is not None and grads[name].abs().sum() > 0, name
    lora = {n: g for n, g in grads.items() if "lora_" in n}
    dead = {n for n, g in lora.items() if g is None or not g.abs().sum() > 0}
    # only image tokens leave the model, so the identity rows of the LAST single block's output projection
    # (linear2) influence nothing: exactly that LoRA gets no gradient; every other one does
    last = f"single_blocks.{tr.models.flux.params.depth_single_blocks - 1}.linear2"
    assert len(lora) > 2 and dead == {n for n in lora if last in n}, dead


def test_gradient_checkpointing_gives_the_same_loss_and_gradients(tiny_config, frozen_models):
    """``model.gradient_checkpointing`` (the core's ``checkpoint_blocks``) changes nothing numerically."""
    results = []
    for flag in ("false", "true"):
        tr = Trainer(tiny_config("data.id_dropout=0.0", f"model.gradient_checkpointing={flag}"), models=frozen_models)
        _perturb_zero_init(tr.adapter)
        s = tr.prepare(tr.data.build(0, 0))
        noise = torch.randn(s.x0.shape, generator=torch.Generator().manual_seed(0))
        out = tr.objective(s, torch.tensor([0.4]), noise)
        out["loss"].backward()
        results.append((out["loss"].detach(), {n: p.grad for n, p in tr.adapter.named_parameters()}))
    (loss_a, grads_a), (loss_b, grads_b) = results
    torch.testing.assert_close(loss_b, loss_a, rtol=0, atol=0)
    assert sum(g is not None for g in grads_a.values()) > 2
    for n in grads_a:
        assert (grads_a[n] is None) == (grads_b[n] is None), n
        if grads_a[n] is not None:
            torch.testing.assert_close(grads_b[n], grads_a[n], rtol=1e-5, atol=1e-8)


def test_resume_is_exact(tiny_config, frozen_models, tmp_path):
    """N steps straight vs N/2, checkpoint, a fresh trainer resumed, N/2: identical parameters."""
    n, common = 6, ("run.steps=6", "optim.accumulation=2", "optim.warmup_steps=3")
    full = Trainer(tiny_config(*common, f"run.output={tmp_path / 'a'}"), models=frozen_models)
    full.fit()
    first = Trainer(tiny_config(*common, f"run.output={tmp_path / 'b'}"), models=frozen_models)
    first.fit(n // 2)
    first.save()
    torch.manual_seed(999)  # a new process would start from other RNG states: resume must restore them
    second = Trainer(tiny_config(*common, f"run.output={tmp_path / 'b'}"), models=frozen_models)
    assert second.resume() and second.step == n // 2
    second.fit()
    a, b = _params(full), _params(second)
    assert a.keys() == b.keys()
    changed = [k for k in a if not torch.equal(a[k], _params(Trainer(tiny_config(*common), models=frozen_models))[k])]
    assert changed, "training did not change the adapter"
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]
    assert second.optimizer.state_dict()["state"].keys() == full.optimizer.state_dict()["state"].keys()


@pytest.mark.parametrize("where", ["torch.save", "rename"])
def test_crash_during_save_keeps_previous_checkpoint(tiny_config, frozen_models, tmp_path, monkeypatch, where):
    tr = Trainer(tiny_config("run.steps=2", f"run.output={tmp_path}"), models=frozen_models)
    tr.fit(1)
    good = tr.save()
    saved = _params(tr)
    tr.fit(2)

    def boom(*a, **k):
        raise OSError("disk full (simulated)")

    if where == "torch.save":
        monkeypatch.setattr(ckpt_module.torch, "save", boom)
    else:  # the rename of the finished temporary folder into place
        real = os.replace
        monkeypatch.setattr(
            ckpt_module.os, "replace", lambda src, dst: boom() if ".tmp-" in str(src) else real(src, dst)
        )
    with pytest.raises(OSError, match="simulated"):
        tr.save()
    monkeypatch.undo()
    assert ckpt_module.latest_checkpoint(tmp_path / "checkpoints") == good
    assert not (tmp_path / "checkpoints" / "step-00000002").exists()
    fresh = Trainer(tiny_config("run.steps=2", f"run.output={tmp_path}"), models=frozen_models)
    assert fresh.resume() and fresh.step == 1
    for k, v in _params(fresh).items():
        assert torch.equal(v, saved[k]), k


def test_nan_loss_stops_with_clear_message(tiny_config, frozen_models, tmp_path):
    tr = Trainer(tiny_config("run.steps=3", f"run.output={tmp_path}"), models=frozen_models)
    tr.fit(1)
    good = tr.save()
    with torch.no_grad():
        tr.adapter.projector[0].weight.fill_(float("nan"))
    with pytest.raises(TrainingDivergedError, match=r"step 1 .*last good checkpoint is .*step-00000001"):
        tr.fit(2)
    assert ckpt_module.latest_checkpoint(tmp_path / "checkpoints") == good


def test_exported_adapter_loads_in_core_and_changes_output(tiny_config, frozen_models, tmp_path):
    tr = Trainer(tiny_config("run.steps=4", "optim.lr=1e-2", "data.id_dropout=0.0"), models=frozen_models)
    tr.fit()
    path = tr.export(tmp_path / "adapter.safetensors")
    p = tr.models.flux.params
    adapter = load_adapter(path, hidden_size=p.hidden_size, depth=p.depth, depth_single_blocks=p.depth_single_blocks)
    for k, v in _params(tr).items():
        assert torch.equal(adapter.adapter_state_dict()[k], v), k
    s = tr.prepare(tr.data.build(0, 0, augment=False))
    flux = tr.models.flux
    args = (s.x0, s.img_ids, s.txt, torch.zeros(1, s.txt.shape[1], 3), torch.tensor([0.5]), s.y, torch.tensor([1.0]))

    def patched(a):
        return flux.forward_anyphoto(*args, identity_inputs(a, s.tokens, s.embeddings))

    with torch.no_grad():
        stock = flux(*args)
        trained = patched(adapter)
        untrained = patched(type(adapter)(adapter.config))  # LoRA B and projector output are zero
    assert (trained - stock).abs().max() > 1e-4
    assert (trained - untrained).abs().max() > 1e-4  # the trained weights matter beyond the canvas tokens


def test_steps_without_face_loss_log_no_face_term(tiny_config, frozen_models):
    """Every identity dropped (id_dropout 0.99): no step has a face loss, so none logs a face term (not 0);
    with no dropout every step logs one."""
    dropped = Trainer(tiny_config("run.steps=2", "data.id_dropout=0.99"), models=frozen_models).fit()
    assert all("face" not in h and "loss" in h for h in dropped), dropped
    tr = Trainer(tiny_config("run.steps=1", "data.id_dropout=0.0"), models=frozen_models)
    kept = tr.fit()
    assert all(h["face"] > 0 for h in kept), kept
