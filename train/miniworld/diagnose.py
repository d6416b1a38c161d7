"""Why the adapter can or cannot learn in the MiniWorld: measurements, each an upper bound or a gap.

* :func:`vae_ceiling`: identity accuracy of the world recognizer on held-out evaluation scenes after a VAE
  round trip (encode + decode), next to the same on the true scenes. No generator can do better at a box
  than the VAE can reconstruct the face there.
* :func:`canvas_locality`: relative error ``|a - b| / |b|`` between the target latent and the latent of the
  location canvas (the training canvas with ``augment=False``: the target face itself) at the token cells
  the face covers completely, and between the target latent and the target masked to the face (white
  elsewhere). Canvas tokens can only tell the model what goes at a cell if the VAE latent of that cell
  depends mostly on the pixels there.
* :func:`face_token_gap`: flow-matching loss at the face tokens with the identities vs with them dropped
  (the null condition of training), at fixed ``t``, for an adapter: how much the adapter uses them.
* :func:`one_sample_fit`: a fresh adapter fitted to the face tokens of one sample (fixed ``t`` and noise):
  can the identity path (LoRA + projector, frozen base) carry the target at all?
* :func:`denoised_identity_accuracy`: identity accuracy at the boxes of the one-step prediction from the
  held-out ground truth noised to ``t``, with the adapter's identities, with them dropped and with none:
  does the adapter put the right person at the box, whether or not the base can draw a scene from noise?

``python -m train.miniworld diagnose --models DIR [--adapter FILE] --json OUT.json`` runs them all (the last
one with ``--adapter``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from anyphoto_core.app.models.miniworld import load_miniworld_recognizer
from anyphoto_core.tokens import pack_latent

from .evaluate import Tally, case_identities, embed_at, heldout_bank, score_image
from .world import WorldSpec

TIMES = (0.3, 0.6, 0.9)


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 -> ``(1, 3, H, W)`` in [-1, 1]."""
    return torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 127.5 - 1


def _pixels(image: Tensor) -> np.ndarray:
    """``(3, H, W)`` in [-1, 1] -> ``(H, W, 3)`` uint8."""
    return ((image.permute(1, 2, 0).clamp(-1, 1) + 1) * 127.5).round().byte().numpy()


@torch.no_grad()
def vae_ceiling(models: Path, cases: int = 8, counts=(2, 3), spec: WorldSpec = WorldSpec()) -> dict:
    """Identity accuracy (as :mod:`train.miniworld.evaluate`) on the true scenes and on their VAE round trip."""
    from anyphoto_core.app.models.miniworld import load_miniworld_vae

    recognizer, vae = load_miniworld_recognizer(models), load_miniworld_vae(models)
    heldout, bank = heldout_bank(spec, recognizer)
    hits = {"true_scene": 0, "vae_round_trip": 0}
    faces = 0
    for n in counts:
        for i in range(cases):
            case, _, candidates = case_identities(spec, n, i, heldout, bank)
            image = case.target.image
            round_trip = _pixels(vae.decode(vae.encode(_to_tensor(image)))[0])
            for name, picture in (("true_scene", image), ("vae_round_trip", round_trip)):
                embs = embed_at(picture, case.target.landmarks, recognizer)
                hits[name] += sum(int(np.argmax(candidates @ e) == j) for j, e in enumerate(embs))
            faces += len(case.people)
    return {"faces": faces, **{f"identity_accuracy_{k}": round(v / faces, 4) for k, v in hits.items()}}


@torch.no_grad()
def denoised_identity_accuracy(
    models: Path,
    adapter: Path | None = None,
    cases: int = 8,
    counts=(2, 3),
    times=(0.6, 0.9),
    spec: WorldSpec = WorldSpec(),
    guidance: float = 3.5,
    isolate: bool = True,
) -> list[dict]:
    """Does the adapter put the right person at the box, independently of whether the base can draw a scene?

    For each held-out evaluation case (as ``eval``: references in other styles than the target), the ground
    truth latent is noised to ``t`` (``x_t = (1 - t) x0 + t noise``) and the model's one-step prediction
    ``x0_hat = x_t - t v`` is decoded and scored at the boxes (:func:`~train.miniworld.evaluate.score_image`),
    with the case's identities (``adapter``), with them dropped (``dropped``, the training null) and with no
    identity tokens (``base``). At high ``t`` the ground truth says little about who is where (the
    ``base`` row is the leak), so the gap between ``adapter`` and ``dropped`` is what the identity inputs
    add. ``isolate=False`` for adapters trained with all-visible attention. Rows: ``t`` and the fields of
    :meth:`~train.miniworld.evaluate.Tally.row` (``sim_gt`` and ``copy_paste`` against the ground truth at ``t``).
    """
    from anyphoto_core.app.pipeline import AnyPhotoPipeline
    from anyphoto_core.conditioning import null_identity_inputs
    from anyphoto_core.placements import Placement
    from anyphoto_core.tokens import image_token_ids, unpack_tokens

    pipe = AnyPhotoPipeline.miniworld(adapter_path=adapter, folder=models)
    recognizer = load_miniworld_recognizer(models)
    heldout, bank = heldout_bank(spec, recognizer)
    grid = spec.size // 16
    img_ids, g = image_token_ids(grid, grid)[None], torch.full((1,), guidance)
    tallies: dict[tuple[float, str], Tally] = {}
    for n in counts:
        for i in range(cases):
            case, identities, candidates = case_identities(spec, n, i, heldout, bank)
            target = case.target
            ids, _, _ = pipe.identity_inputs(
                identities, [Placement.from_landmarks(lmk) for lmk in target.landmarks], (spec.size, spec.size)
            )
            conditions = {"adapter": ids, "dropped": null_identity_inputs(pipe.adapter, ids), "base": None}
            txt, y = pipe.encode_prompt(target.caption, free_encoders=False)
            txt_ids = torch.zeros(1, txt.shape[1], 3)
            x0 = pack_latent(pipe.vae.encode(_to_tensor(target.image)))
            noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(case.seed))
            ref_embs = np.stack([ident.embedding for ident in identities])
            gt_embs = embed_at(target.image, target.landmarks, recognizer)
            for t in times:
                tt = torch.tensor([float(t)])
                x_t = (1 - tt) * x0 + tt * noise
                for name, cond in conditions.items():
                    v = pipe.flux.forward_anyphoto(x_t, img_ids, txt, txt_ids, tt, y, g, cond, isolate=isolate)
                    image = _pixels(pipe.vae.decode(unpack_tokens(x_t - tt * v, grid, grid))[0])
                    score = score_image(image, target.landmarks, candidates, ref_embs, gt_embs, recognizer)
                    tallies[(t, name)] = tallies.get((t, name), Tally()).add(score)
    return [{"t": t, **tally.row(name, "-".join(map(str, counts)))} for (t, name), tally in tallies.items()]


def miniworld_trainer(models: Path, overrides: list[str]):
    """The normal trainer on ``train/configs/miniworld.yaml`` with the world models of ``models``."""
    from train.config import load_config
    from train.trainer import Trainer

    config = load_config(
        "train/configs/miniworld.yaml", [f"model.world_dir={models}", "run.output=runs/miniworld/diagnose", *overrides]
    )
    return Trainer(config)


@torch.no_grad()
def canvas_locality(models: Path, samples: int = 20, overrides: list[str] = ()) -> dict:
    """Mean relative latent error at fully covered face cells (see module doc), with the world VAE."""
    return locality_errors(miniworld_trainer(models, list(overrides)), samples)


@torch.no_grad()
def locality_errors(trainer, samples: int) -> dict:
    """:func:`canvas_locality` for a built trainer (its data and ``models.vae.encode``)."""
    encode = trainer.models.vae.encode
    size = trainer.config.data.resolution
    grid, cell = size // 16, 16

    def latent(image: np.ndarray) -> torch.Tensor:
        return pack_latent(encode(_to_tensor(image)))[0]

    canvas_err, masked_err = [], []
    for position in range(samples):
        sample = trainer.data.build(position, 0, augment=False)
        target = latent(sample.image)
        for canvas in sample.canvases:
            mask = np.asarray(canvas.mask, np.float32)
            covered = torch.from_numpy(mask.reshape(grid, cell, grid, cell).mean((1, 3)).flatten() > 0.99)
            if not covered.any():
                continue
            masked = np.where(mask[..., None] > 0.5, sample.image, 255).astype(np.uint8)
            ref = target[covered]
            canvas_err.append(float((latent(np.asarray(canvas.image))[covered] - ref).norm() / ref.norm()))
            masked_err.append(float((latent(masked)[covered] - ref).norm() / ref.norm()))
    return {
        "faces": len(canvas_err),
        "canvas_vs_target": round(float(np.mean(canvas_err)), 4) if canvas_err else None,
        "masked_target_vs_target": round(float(np.mean(masked_err)), 4) if masked_err else None,
    }


@torch.no_grad()
def face_token_gap(
    models: Path, adapter: Path | None, samples: int = 30, times=TIMES, overrides: list[str] = ()
) -> dict:
    """Face-token flow loss with identities and with them dropped, at each ``t`` (fresh adapter if None)."""
    from safetensors.torch import load_file

    from anyphoto_core.conditioning import identity_inputs, null_identity_inputs
    from train.losses import interpolate

    trainer = miniworld_trainer(models, ["loss.face_weight=0", *overrides])
    if adapter is not None:
        trainer.adapter.load_tensors(load_file(str(adapter)), str(adapter))
    flux, guidance = trainer.models.flux, torch.full((1,), trainer.config.model.guidance)
    prepared = [trainer.prepare(trainer.data.build(p, 0, augment=False)) for p in range(samples)]
    rows = []
    for t in times:
        losses = {"identities": [], "dropped": []}
        for p, s in enumerate(prepared):
            cells = torch.unique(torch.cat([tok.index for tok in s.tokens]))
            noise = torch.randn(s.x0.shape, generator=torch.Generator().manual_seed(p))
            x_t, tt = interpolate(s.x0, noise, torch.tensor([t])), torch.tensor([t])
            ids = identity_inputs(trainer.adapter, s.tokens, s.embeddings)
            for name, inputs in (("identities", ids), ("dropped", null_identity_inputs(trainer.adapter, ids))):
                txt_ids = torch.zeros(1, s.txt.shape[1], 3)
                v = flux.forward_anyphoto(x_t, s.img_ids, s.txt, txt_ids, tt, s.y, guidance, inputs, isolate=True)
                losses[name].append(float(((v - (noise - s.x0)) ** 2).mean(-1)[0, cells].mean()))
        with_ids, dropped = float(np.mean(losses["identities"])), float(np.mean(losses["dropped"]))
        rows.append(
            {
                "t": t,
                "identities": round(with_ids, 4),
                "dropped": round(dropped, 4),
                "relative_gain": round(1 - with_ids / dropped, 4),
            }
        )
    return {"adapter": str(adapter) if adapter else "fresh", "samples": samples, "rows": rows}


def one_sample_fit(
    models: Path, steps: int = 300, t: float = 0.6, lr: float = 2e-3, position: int = 3, overrides: list[str] = ()
) -> dict:
    """Face-token flow loss of one sample before and after ``steps`` Adam steps on it, with its identities and
    with the null condition, next to the base without any identity token."""
    from anyphoto_core.conditioning import identity_inputs, null_identity_inputs
    from train.losses import interpolate

    trainer = miniworld_trainer(models, ["loss.face_weight=0", *overrides])
    s = trainer.prepare(trainer.data.build(position, 0, augment=False))
    cells = torch.unique(torch.cat([tok.index for tok in s.tokens]))
    tt = torch.tensor([t])
    noise = torch.randn(s.x0.shape, generator=torch.Generator().manual_seed(0))
    x_t, flux, guidance = interpolate(s.x0, noise, tt), trainer.models.flux, torch.full((1,), 1.0)
    txt_ids = torch.zeros(1, s.txt.shape[1], 3)

    def face_loss(inputs) -> Tensor:
        v = flux.forward_anyphoto(x_t, s.img_ids, s.txt, txt_ids, tt, s.y, guidance, inputs, isolate=True)
        return ((v - (noise - s.x0)) ** 2).mean(-1)[0, cells].mean()

    def both() -> dict:
        ids = identity_inputs(trainer.adapter, s.tokens, s.embeddings)
        with torch.no_grad():
            return {
                "identities": round(float(face_loss(ids)), 4),
                "dropped": round(float(face_loss(null_identity_inputs(trainer.adapter, ids))), 4),
            }

    with torch.no_grad():
        stock = flux(x_t, s.img_ids, s.txt, txt_ids, tt, s.y, guidance)
        base = float(((stock - (noise - s.x0)) ** 2).mean(-1)[0, cells].mean())
    before = both()
    optimizer = torch.optim.Adam([p for p in trainer.adapter.parameters() if p.requires_grad], lr=lr)
    for _ in range(steps):
        loss = face_loss(identity_inputs(trainer.adapter, s.tokens, s.embeddings))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return {
        "t": t,
        "steps": steps,
        "face_cells": int(len(cells)),
        "base_no_tokens": round(base, 4),
        "before": before,
        "after": both(),
    }


def diagnose(models: Path, adapter: Path | None = None, cases: int = 8, isolate: bool = True) -> dict:
    """Every measurement of this module; ``cases`` per people count (2 and 3) for the identity accuracies."""
    torch.set_num_threads(1)
    out = {"models": str(models), "vae_ceiling": vae_ceiling(models, cases), "canvas_locality": canvas_locality(models)}
    out["face_token_gap"] = [face_token_gap(models, None)]
    if adapter is not None:
        out["face_token_gap"].append(face_token_gap(models, adapter))
        out["denoised_identity_accuracy"] = denoised_identity_accuracy(models, adapter, cases, isolate=isolate)
    out["one_sample_fit"] = one_sample_fit(models)
    return out
