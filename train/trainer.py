"""The training loop: one optimizer step = ``accumulation`` micro-batches of one sample each.

Per micro-batch (see docs/training.md): build a sample (:mod:`train.dataset`), VAE-encode the
target and the canvases (no grad), prune canvas tokens, zero dropped identities, project the
embeddings with the adapter, run the core AnyPhoto forward (``Flux.forward_anyphoto`` with
the adapter's LoRA in its :class:`~anyphoto_core.identity.IdentityInputs`, ``checkpoint_blocks`` =
gradient checkpointing), and take
``L = L_flow + face_weight * L_face (+ nce_weight * L_nce)``. Only the adapter (projector + peft
LoRA) trains. Multi-GPU through Hugging Face ``accelerate`` (DDP on the adapter module).
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from anyphoto_core.adapter import AdapterConfig, AnyPhotoAdapter
from anyphoto_core.conditioning import encode_canvas_tokens, identity_inputs
from anyphoto_core.tokens import image_token_ids, pack_latent, unpack_tokens

from .checkpoint import CheckpointError, latest_checkpoint, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .dataset import SampleBuilder, TrainingSample
from .face_crops import decode_face_crops, decode_face_crops_full
from .losses import (
    face_loss_weights,
    face_similarity_loss,
    flow_matching_loss,
    info_nce_loss,
    interpolate,
    one_step_x0,
    sample_logit_normal,
)
from .manifest import Manifest, read_manifest, trained_recognizer
from .models import FrozenModels, build_models, decode_with_grad, parameter_dtype
from .sharding import check_sharding_setup, reshard_gathered
from .stream import StreamLayout, sample_loader
from .text_cache import check_captions

log = logging.getLogger(__name__)


#: Loss terms :class:`AnyPhotoObjective` can return, in a fixed order (they are all-reduced as one vector).
LOSS_TERMS = ("loss", "flow", "face", "nce")


class TrainingDivergedError(RuntimeError):
    """The loss became NaN/inf; the message names the step and the last good checkpoint."""


@dataclass
class PreparedSample:
    """Tensors of one sample, on the device. ``x0`` (1, N, 64) packed target latent; ``img_ids`` (1, N, 3);
    ``txt`` (1, L, ctx); ``y`` (1, vec); ``tokens`` per identity ``IdentityTokens``; ``keep`` (F,) bool;
    ``embeddings``/``reference`` (F, 512); ``landmarks`` (F, 5, 2) target pixels; ``grid`` (h_tok, w_tok)."""

    x0: Tensor
    img_ids: Tensor
    txt: Tensor
    y: Tensor
    tokens: list
    keep: Tensor
    embeddings: Tensor
    reference: Tensor
    landmarks: Tensor
    grid: tuple[int, int]


def touch_parameters(module: nn.Module) -> Tensor:
    """``0 * sum(p)`` over every trainable parameter: an exact-zero term that puts each parameter in the graph.

    DDP all-reduces a gradient for every parameter on every rank. A sample whose identities all prune to
    0 tokens never calls a LoRA layer, and without this term DDP would raise "Expected to have finished
    reduction ..." (or, with ``find_unused_parameters``, the ranks could disagree on the bucket order). The
    term gives those parameters an exact zero gradient, which is their true gradient for that sample. Cost:
    one sum per parameter tensor (a few hundred small kernels), versus ``find_unused_parameters=True``,
    which walks the whole FLUX autograd graph every step; ``static_graph`` does not fit because the set of
    used parameters changes from sample to sample.
    """
    params = [p for p in module.parameters() if p.requires_grad]
    return torch.stack([p.sum() for p in params]).sum() * 0.0


class AnyPhotoObjective(nn.Module):
    """The trainable module (only ``adapter`` is registered, so DDP syncs only its weights) and the loss."""

    def __init__(self, adapter: AnyPhotoAdapter, models: FrozenModels, config: TrainConfig):
        super().__init__()
        self.adapter = adapter
        object.__setattr__(self, "models", models)  # frozen, not a submodule
        self.config = config

    def forward(
        self, s: PreparedSample, t: Tensor, noise: Tensor, negatives: Tensor | None = None
    ) -> dict[str, Tensor]:
        """Loss terms ``flow``, ``face`` (``nce``) and the total ``loss`` of one sample at time ``t`` (1,)."""
        m, cfg = self.models, self.config
        flux = m.flux
        dtype = parameter_dtype(flux)
        tokens = [
            tok if keep else type(tok)(torch.zeros_like(tok.tokens), tok.ids, tok.index, tok.grid)
            for tok, keep in zip(s.tokens, s.keep.tolist(), strict=True)
        ]
        ids = identity_inputs(self.adapter, tokens, s.embeddings)
        x_t = interpolate(s.x0, noise, t)
        guidance = torch.full((1,), cfg.model.guidance, device=x_t.device, dtype=dtype)
        args = (
            x_t.to(dtype),
            s.img_ids,
            s.txt.to(dtype),
            torch.zeros(1, s.txt.shape[1], 3, device=x_t.device),
            t.to(dtype),
            s.y.to(dtype),
            guidance,
            ids,
        )
        v = flux.forward_anyphoto(*args, isolate=cfg.model.isolate, checkpoint_blocks=cfg.model.gradient_checkpointing)
        out = {"flow": flow_matching_loss(v, s.x0, noise)}
        lc = cfg.loss
        if lc.face_weight > 0 or lc.nce_weight > 0:
            weights = face_loss_weights(s.keep, t.expand(len(s.keep)).cpu().to(s.keep.device), lc.face_t_max)
            if weights.sum() > 0:
                faces = weights > 0  # only faces that carry loss are decoded
                x0_hat = one_step_x0(x_t.float(), t.float(), v.float())
                latent = unpack_tokens(x0_hat, *s.grid)
                decode = functools.partial(decode_with_grad, m.vae)
                if lc.face_decode == "full":
                    crops = decode_face_crops_full(decode, latent, s.landmarks[faces])
                else:
                    crops = decode_face_crops(decode, latent, s.landmarks[faces], lc.face_crop_margin)
                pred, reference, weights = m.recognizer(crops), s.reference[faces], weights[faces]
                out["face"] = face_similarity_loss(pred, reference, weights)
                if lc.nce_weight > 0 and negatives is not None and len(negatives):
                    out["nce"] = info_nce_loss(pred, reference, negatives, lc.nce_temperature, weights)
        out["loss"] = (
            touch_parameters(self.adapter)
            + out["flow"]
            + lc.face_weight * out.get("face", 0.0)
            + lc.nce_weight * out.get("nce", 0.0)
        )
        return out


def adapter_config_for(flux, config: TrainConfig, recognizer: str = "unknown") -> AdapterConfig:
    return AdapterConfig.for_flux(
        flux.params,
        rank=config.model.rank,
        alpha=config.model.alpha,
        projector_hidden=config.model.projector_hidden,
        token_rule=config.data.token_rule,
        embedding_kind=config.data.embedding,
        recognizer=recognizer,
        base_model={"flux": "flux.1-dev", "tiny": "tiny-random-flux", "miniworld": "miniworld"}[config.model.kind],
    )


class Trainer:
    """Owns models, adapter, optimizer, scheduler and the data stream; ``fit`` runs the loop."""

    def __init__(
        self,
        config: TrainConfig,
        manifest: Manifest | None = None,
        models: FrozenModels | None = None,
        accelerator=None,
    ):
        from accelerate import Accelerator

        self.config = config
        rc = config.run
        if accelerator is None:
            cuda = torch.cuda.is_available() and not rc.cpu
            mp = ("bf16" if cuda else "no") if rc.mixed_precision == "auto" else rc.mixed_precision
            accelerator = Accelerator(
                gradient_accumulation_steps=config.optim.accumulation,
                mixed_precision=mp,
                cpu=rc.cpu or not torch.cuda.is_available(),
            )
        self.accelerator = accelerator
        device = accelerator.device
        frozen_dtype = torch.bfloat16 if accelerator.mixed_precision == "bf16" else torch.float32
        need_recognizer = (
            config.loss.face_weight > 0 or config.loss.nce_weight > 0 or config.data.embedding == "reference"
        )
        if config.model.shard_flux:
            check_sharding_setup(accelerator)
        self.models = models or build_models(config.model, device, frozen_dtype, need_recognizer=need_recognizer)
        self.manifest = manifest or read_manifest(config.data.manifest)
        check_captions(self.manifest, config.data, self.models.text)
        self.data = SampleBuilder(self.manifest, config.data, seed=rc.seed)
        self.layout = StreamLayout(accelerator.num_processes, config.optim.accumulation)
        torch.manual_seed(rc.seed)
        recognizer = trained_recognizer(self.manifest, config.model.recognizer)
        self.adapter = AnyPhotoAdapter(
            adapter_config_for(self.models.flux, config, recognizer), lora_dropout=config.model.lora_dropout
        )
        if not config.model.modulation:  # ablation: the projector keeps its zero output layer, so delta c = 0
            self.adapter.projector.requires_grad_(False)
        oc = config.optim
        params = [p for p in self.adapter.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=oc.lr, betas=tuple(oc.betas), weight_decay=oc.weight_decay, eps=oc.eps)
        warmup = max(oc.warmup_steps, 0)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: min(1.0, (s + 1) / warmup) if warmup else 1.0
        )
        objective = AnyPhotoObjective(self.adapter, self.models, config).to(device)
        self.objective, self.optimizer = accelerator.prepare(objective, optimizer, device_placement=[False, False])
        self.scheduler = scheduler  # stepped once per optimizer step (accelerate's wrapper steps per process)
        self.step = 0
        self.output = Path(rc.output)
        self.last_checkpoint: Path | None = None
        self._log_file = None

    # ---- data ---------------------------------------------------------------------------------
    @property
    def micro_per_step(self) -> int:
        return self.config.optim.accumulation

    @property
    def global_batch(self) -> int:
        """Samples per optimizer step: 1 per GPU x GPUs x accumulation."""
        return self.layout.global_batch

    def position(self, step: int, micro: int) -> int:
        """Global data-stream position of this process's micro-batch ``micro`` of ``step`` (:mod:`train.stream`)."""
        return self.layout.position(step, micro, self.accelerator.process_index)

    @torch.no_grad()
    def prepare(self, sample: TrainingSample) -> PreparedSample:
        m, device = self.models, self.accelerator.device
        img = torch.from_numpy(sample.image).permute(2, 0, 1)[None].float() / 127.5 - 1
        latent = m.vae.encode(img).float()
        h_tok, w_tok = latent.shape[2] // 2, latent.shape[3] // 2
        recipe = self.adapter.config
        tokens = encode_canvas_tokens(
            sample.canvases, m.vae.encode, rule=recipe.token_rule, type_index=recipe.type_index, allow_empty=True
        )
        txt, y = m.text(sample.caption)
        f32 = dict(device=device, dtype=torch.float32)
        reference = torch.from_numpy(sample.reference).to(**f32)
        if self.config.data.embedding == "reference":  # e_i = ArcFace(F_i) of the pasted face (paper eq. 15)
            faces = torch.from_numpy(sample.faces).permute(0, 3, 1, 2).to(**f32) / 255
            reference = F.normalize(m.recognizer(faces).float(), dim=-1)
        keep = torch.from_numpy(sample.keep).to(device)
        return PreparedSample(
            x0=pack_latent(latent).to(**f32),
            img_ids=image_token_ids(h_tok, w_tok, device=device)[None],
            txt=txt.to(**f32),
            y=y.to(**f32),
            tokens=tokens,
            keep=keep,
            embeddings=reference * keep[:, None],
            reference=reference,
            landmarks=torch.from_numpy(sample.landmarks).to(**f32),
            grid=(h_tok, w_tok),
        )

    def negatives_for(self, sample: TrainingSample) -> Tensor | None:
        """Embeddings of every gallery identity not in ``sample`` (extended negatives), (K, 512)."""
        if self.config.loss.nce_weight <= 0:
            return None
        others = [self.data._embeddings[k] for k in sorted(self.manifest.galleries) if k not in sample.identities]
        return torch.from_numpy(np.stack(others)).to(self.accelerator.device) if others else None

    # ---- loop ---------------------------------------------------------------------------------
    def train_step(self, samples: Iterator[TrainingSample] | None = None) -> dict[str, float]:
        """One optimizer step; returns each loss term's mean over the micro-batches of all processes that have
        it (:meth:`reduce_terms`). ``samples``: this step's samples in micro-batch order (the prefetching loader
        of :meth:`fit`); None = build them here."""
        sums, counts = (torch.zeros(len(LOSS_TERMS), dtype=torch.float64, device="cpu") for _ in range(2))
        self.objective.train()
        for micro in range(self.micro_per_step):
            pos = self.position(self.step, micro)
            sample = next(samples) if samples is not None else self.data.build(pos, self.step)
            prepared = self.prepare(sample)
            g = torch.Generator().manual_seed(self.config.run.seed * 1_000_003 + pos)
            t = sample_logit_normal(1, self.config.loss.logit_mean, self.config.loss.logit_std, g)
            noise = torch.randn(prepared.x0.shape, generator=g, device=g.device).to(prepared.x0.device)
            with self.accelerator.accumulate(self.objective), self.accelerator.autocast():
                out = self.objective(prepared, t.to(prepared.x0.device), noise, self.negatives_for(sample))
                loss = out["loss"]
                if not torch.isfinite(loss):
                    raise TrainingDivergedError(
                        f"loss is {loss.item()} at step {self.step} (terms: "
                        f"{ {k: float(v.detach()) for k, v in out.items()} }); training stopped. The last good "
                        f"checkpoint is {self.last_checkpoint or 'none (no checkpoint written yet)'}; resume from it "
                        "with a lower optim.lr (--resume), or check the data."
                    )
                self.accelerator.backward(loss)
                if self.config.model.shard_flux:
                    reshard_gathered(self.models.flux)
                if self.accelerator.sync_gradients and self.config.optim.max_grad_norm > 0:
                    self.accelerator.clip_grad_norm_(self.adapter.parameters(), self.config.optim.max_grad_norm)
                self.optimizer.step()
                if self.accelerator.sync_gradients:
                    self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
            for k, v in out.items():
                sums[LOSS_TERMS.index(k)] += float(v.detach())
                counts[LOSS_TERMS.index(k)] += 1
        self.step += 1
        return self.reduce_terms(sums, counts)

    def reduce_terms(self, sums: Tensor, counts: Tensor) -> dict[str, float]:
        """All-reduce per-term sums and counts ``(len(LOSS_TERMS),)`` over the processes (one small
        all-reduce per step) and return ``{term: sum / count}`` for the terms some micro-batch had: a step
        whose faces were all dropped contributes no face term instead of a 0."""
        both = torch.cat([sums.double(), counts.double()]).to(self.accelerator.device)
        both = self.accelerator.reduce(both, reduction="sum").cpu()
        total, seen = both[: len(LOSS_TERMS)], both[len(LOSS_TERMS) :]
        return {k: float(total[i] / seen[i]) for i, k in enumerate(LOSS_TERMS) if seen[i] > 0}

    def fit(self, steps: int | None = None) -> list[dict[str, float]]:
        """Train until ``steps`` (default ``run.steps``) optimizer steps are done; returns the logged terms."""
        from tqdm.auto import tqdm

        rc, acc = self.config.run, self.accelerator
        target = rc.steps if steps is None else steps
        if acc.is_main_process:
            log.info(
                "global batch = 1 per GPU x %d GPUs x %d accumulation = %d",
                acc.num_processes,
                self.micro_per_step,
                self.global_batch,
            )
            print(
                f"global batch = 1 per GPU x {acc.num_processes} GPUs x {self.micro_per_step} accumulation "
                f"= {self.global_batch}",
                flush=True,
            )
        history = []
        bar = tqdm(total=target, initial=self.step, disable=not acc.is_main_process, desc="train")
        keys = [(self.position(s, m), s) for s in range(self.step, target) for m in range(self.micro_per_step)]
        samples = sample_loader(self.data, keys, self.config.data.workers, self.config.data.prefetch)
        while self.step < target:
            start = time.perf_counter()
            terms = self.train_step(samples)
            terms["seconds"] = time.perf_counter() - start
            terms["lr"] = self.scheduler.get_last_lr()[0]
            history.append(terms)
            bar.update(1)
            bar.set_postfix({k: f"{v:.4f}" for k, v in terms.items() if k in LOSS_TERMS})
            if acc.is_main_process and self.step % max(rc.log_every, 1) == 0:
                self._log(terms)
            if rc.checkpoint_every and self.step % rc.checkpoint_every == 0:
                self.save()
            if rc.sample_every and self.step % rc.sample_every == 0:
                self.save_samples()
        bar.close()
        return history

    def save_samples(self) -> None:
        """Preview grid of this step (:mod:`train.samples`), written by the main process. With a sharded FLUX
        every process generates (each FLUX call gathers weights from all of them); else only the main one."""
        from .samples import generate_grid, write_grid

        if self.config.model.shard_flux or self.accelerator.is_main_process:
            grid = generate_grid(self)
            if self.accelerator.is_main_process:
                write_grid(grid, self.output / "samples" / f"step-{self.step:08d}.png")

    def _log(self, terms: dict[str, float]) -> None:
        """TensorBoard scalars when tensorboard is installed, else JSONL lines in ``<output>/log.jsonl``."""
        if self._log_file is None:
            self.output.mkdir(parents=True, exist_ok=True)
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._log_file = SummaryWriter(str(self.output / "tensorboard"))
            except ImportError:
                self._log_file = open(self.output / "log.jsonl", "a")  # noqa: SIM115 - closed by close()
        if hasattr(self._log_file, "add_scalar"):
            for k, v in terms.items():
                self._log_file.add_scalar(f"train/{k}", v, self.step)
        else:
            self._log_file.write(json.dumps({"step": self.step, **terms}) + "\n")
            self._log_file.flush()

    # ---- checkpoints --------------------------------------------------------------------------
    def save(self) -> Path | None:
        """Atomic checkpoint of the current step (main process writes; all processes wait)."""
        acc = self.accelerator
        acc.wait_for_everyone()
        if acc.is_main_process:
            self.last_checkpoint = save_checkpoint(
                self.output / "checkpoints",
                self.step,
                self.adapter,
                self.optimizer,
                self.scheduler,
                {
                    "data_position": self.layout.consumed(self.step),
                    "world_size": self.layout.world,
                    "accumulation": self.layout.accumulation,
                    "config": self.config.to_dict(),
                },
                keep=self.config.run.keep_checkpoints,
            )
        acc.wait_for_everyone()
        return self.last_checkpoint

    def resume(self, path: str | Path | None = None) -> bool:
        """Load ``path`` (or the latest checkpoint under ``<output>/checkpoints``); False if none exists."""
        path = Path(path) if path else latest_checkpoint(self.output / "checkpoints")
        if path is None:
            return False
        state = load_checkpoint(path, self.adapter, self.optimizer, self.scheduler)
        self.step = int(state["step"])
        if "data_position" not in state:
            raise CheckpointError(f"{path}/state.json lacks data_position: cannot tell where the data stream stopped")
        self.layout = StreamLayout(self.layout.world, self.layout.accumulation, int(state["data_position"]), self.step)
        before = (state.get("world_size"), state.get("accumulation"))
        if before != (self.layout.world, self.layout.accumulation) and self.accelerator.is_main_process:
            log.warning(
                "resuming with %d processes x %d accumulation (checkpoint: %s x %s): the data stream is re-sharded "
                "and continues at sample %d",
                self.layout.world,
                self.layout.accumulation,
                *before,
                self.layout.start,
            )
        self.last_checkpoint = path
        return True

    def export(self, path: str | Path) -> Path:
        """Write the final adapter (``AnyPhotoAdapter.save``; metadata the nodes check)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.accelerator.is_main_process:
            self.adapter.save(path, {"training_step": str(self.step)})
        self.accelerator.wait_for_everyone()
        return path

    def close(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
