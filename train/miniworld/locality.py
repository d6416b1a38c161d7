"""A local world VAE encoder: the latent of a face cell should not depend on what surrounds the face.

AnyPhoto encodes each location canvas (the face pasted on white) with the VAE and hands its tokens to the
model at the face's cells. That only tells the model what belongs at a cell if the canvas latent there
is close to the latent the same pixels get inside a scene. The world VAE, trained on 32-px windows, is
far from that (``diagnose.canvas_locality``: 0.86 relative error), because GroupNorm statistics and a
receptive field that spans the picture carry the white surroundings into every face cell.

:func:`localize_vae` fine-tunes only the *encoder*, against a frozen copy of itself (the teacher):

* ``keep``: ``E(scene) = E_teacher(scene)`` at every cell, so the latent space (the base transformer's
  training data, the decoder's input) stays where it was;
* ``local``: ``E(canvas) = E_teacher(scene)`` at the cells the face covers completely (coverage >= 0.9),
  with the canvas exactly as the trainer builds it (``SampleBuilder.build(..., augment=False)``: the target
  face itself, pasted by ``anyphoto_core.canvas.build_location_canvas``).

The decoder and the latent shift/scale are unchanged, so the base transformer trained on the teacher's
latents stays valid. ``python -m train.miniworld localize-vae --init VAE --out DIR`` (after ``manifest``).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .checkpoints import save_weights, train_loop
from .vae import MINIWORLD_VAE_CONFIG, cosine_lr

#: A cell enters the ``local`` term when the face covers at least this fraction of its 16 x 16 pixels.
FULL_COVERAGE = 0.9


def covered_cells(mask: np.ndarray, cell: int = 16) -> np.ndarray:
    """``(H, W)`` bool face mask -> ``(H/cell, W/cell)`` bool: cells covered at least :data:`FULL_COVERAGE`."""
    h, w = mask.shape
    return mask.reshape(h // cell, cell, w // cell, cell).mean((1, 3)) >= FULL_COVERAGE


def _to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 127.5 - 1


def local_batch(builder, positions) -> tuple[torch.Tensor, torch.Tensor, list[int], torch.Tensor]:
    """Scenes ``(B, 3, R, R)``, their canvases ``(C, 3, R, R)``, each canvas's scene index, and each canvas's
    fully covered cells as a latent-resolution mask ``(C, 1, R/8, R/8)`` (a 16-px cell = 2 x 2 latents)."""
    scenes, canvases, owner, cells = [], [], [], []
    for b, position in enumerate(positions):
        sample = builder.build(int(position), 0, augment=False)
        scenes.append(sample.image)
        for canvas in sample.canvases:
            canvases.append(np.asarray(canvas.image))
            owner.append(b)
            cells.append(covered_cells(np.asarray(canvas.mask)).repeat(2, 0).repeat(2, 1))
    mask = torch.from_numpy(np.stack(cells)).float()[:, None]
    return _to_tensor(scenes), _to_tensor(canvases), owner, mask


def locality_losses(encoder, teacher, scenes, canvases, owner, mask) -> dict[str, torch.Tensor]:
    """``keep`` and ``local`` mean-squared latent errors (posterior means; see module doc)."""
    with torch.no_grad():
        target = teacher(scenes)
    keep = F.mse_loss(encoder(scenes), target)
    if mask.sum() == 0:
        return {"keep": keep, "local": keep.new_zeros(())}
    err = (encoder(canvases) - target[owner]) ** 2 * mask
    local = err.sum() / (mask.sum() * target.shape[1])
    return {"keep": keep, "local": local}


def localize_vae(
    manifest: Path,
    init: Path,
    out: Path,
    steps: int | None = None,
    seed: int = 0,
    batch: int = 4,
    lr: float = 5e-4,
    local_weight: float = 1.0,
) -> Path:
    """Fine-tune the encoder of ``init`` (a world ``vae.safetensors`` with its ``vae.json``) for locality on
    the training scenes of ``manifest``; resumes from ``out/checkpoint``; writes ``out/vae.safetensors`` and
    ``out/vae.json`` (the init's config, so the latent shift/scale are the init's)."""
    from diffusers import AutoencoderKL
    from safetensors.torch import load_file

    from ..config import DataConfig
    from ..dataset import SampleBuilder
    from ..manifest import read_manifest

    steps = steps or 400
    torch.manual_seed(seed)
    init_json = json.loads(Path(init).with_suffix(".json").read_text())
    model = AutoencoderKL(**MINIWORLD_VAE_CONFIG)
    model.load_state_dict(load_file(str(init)))
    frozen = copy.deepcopy(model).requires_grad_(False).eval()
    data = DataConfig(manifest=str(manifest), resolution=init_json["config"]["sample_size"], crop_size=112)
    builder = SampleBuilder(read_manifest(manifest), data, seed=seed)
    params = list(model.encoder.parameters())  # the loss never reaches the decoder
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)

    def encoder(x):
        return model.encode(x).latent_dist.mean

    def teacher(x):
        return frozen.encode(x).latent_dist.mean

    def step_fn(step: int) -> dict[str, float]:
        rng = np.random.default_rng([seed, step])
        batch_data = local_batch(builder, rng.choice(len(builder), batch, replace=False))
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, steps, lr, warmup=20)
        terms = locality_losses(encoder, teacher, *batch_data)
        loss = terms["keep"] + local_weight * terms["local"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        return {k: float(v) for k, v in terms.items()}

    seconds = train_loop(out, model, optimizer, steps, step_fn, "localize-vae", checkpoint_every=50)
    save_weights(model, Path(out) / "vae.safetensors")
    (Path(out) / "vae.json").write_text(
        json.dumps(
            {
                "config": init_json["config"],
                "steps": steps,
                "seed": seed,
                "seconds": seconds,
                "init": str(init),
                "localized": {"manifest": str(manifest), "local_weight": local_weight, "batch": batch, "lr": lr},
            }
        )
    )
    return Path(out) / "vae.safetensors"
