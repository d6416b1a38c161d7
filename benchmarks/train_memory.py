"""Memory of one AnyPhoto training step with the real FLUX.1-dev architecture, and of the face loss alone.

What runs: the trainer's terms (:func:`step_loss`: ``identity_inputs`` -> ``Flux.forward_anyphoto`` ->
flow-matching loss; one-step ``x0_hat`` -> face crops decoded by the FLUX VAE decoder -> IResNet-100 (the
glintr100 architecture of antelopev2) -> face loss; ``touch_parameters``), backward, AdamW step. Models: full
FLUX.1-dev (19 double + 38 single blocks, hidden 3072) in bf16, the FLUX VAE (diffusers ``AutoencoderKL`` in
FLUX layout) in bf16, the adapter (rank 16, projector 3072) and the recognizer in fp32, as the trainer loads
them. Text: a cached caption (256 T5 positions). Identities: real canvases (``_common.identity_tokens``),
pruned by the default rule; face boxes of 160/128/112/144 px at 1024^2 (scaled at 512^2).

The meter (``_common.TensorMemoryMeter``) adds up the storage of every tensor an operator returns and drops
it when the storage is freed: it counts exactly what the step allocates (activations kept for backward,
gradients, optimizer state, temporaries), not the weights that existed before it. On ``--device meta``
(default) no arithmetic is done, so full FLUX at 1024^2 is measured in seconds on a CPU; the bytes are those
the same operators allocate on a real device (``tests/test_train_memory.py`` checks meta == CPU). Attention on
meta runs the kernel CPU SDPA picks (``_scaled_dot_product_flash_attention_for_cpu``: output + log-sum-exp
kept, no N x N scores), like flash/memory-efficient attention on a GPU. Not counted: kernel workspaces
(cuDNN/cuBLAS), the CUDA caching allocator's rounding and fragmentation, CUDA context (~0.5 GiB). Not modelled:
the trainer's bf16 autocast on GPU (it keeps LayerNorm outputs in fp32); here activations are bf16.

Rows are printed as they are measured (a stopped run keeps its data). ``--device cuda`` measures the same
step with ``torch.cuda.max_memory_allocated`` (no GPU was available when this was written: untested there).

    python benchmarks/train_memory.py [--device meta] [--resolutions 512 1024] [--identities 1 2 3 4]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import sys
import time
import unittest.mock
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import face_boxes, identity_tokens, peak_bytes  # noqa: E402
from _iresnet import iresnet  # noqa: E402

from anyphoto_core.adapter import AdapterConfig, AnyPhotoAdapter  # noqa: E402
from anyphoto_core.app.models.text_encoders import T5_MIN_LENGTH  # noqa: E402
from anyphoto_core.app.models.vae import FLUX_VAE_CONFIG, FluxVAE  # noqa: E402
from anyphoto_core.conditioning import identity_inputs  # noqa: E402
from anyphoto_core.flux import Flux, FluxParams  # noqa: E402
from anyphoto_core.placements import Placement  # noqa: E402
from anyphoto_core.tokens import image_token_ids, unpack_tokens  # noqa: E402
from train.face_crops import DEFAULT_MARGIN, decode_face_crops, decode_face_crops_full  # noqa: E402
from train.losses import face_similarity_loss, flow_matching_loss, interpolate, one_step_x0  # noqa: E402
from train.models import decode_with_grad  # noqa: E402
from train.trainer import PreparedSample, touch_parameters  # noqa: E402

GIB = 1024**3


_SDPA = F.scaled_dot_product_attention


def _sdpa_flash_on_meta(q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None = None, **kwargs) -> Tensor:
    """``F.scaled_dot_product_attention``, except on meta tensors: the kernel CPU SDPA picks for these inputs
    (flash attention for CPU: output and log-sum-exp kept for backward). SDPA's own choice on meta is the math
    fallback, which materializes the ``(H, Nq, Nk)`` scores that no GPU kernel keeps."""
    if q.device.type != "meta":
        return _SDPA(q, k, v, attn_mask=attn_mask, **kwargs)
    if attn_mask is not None and attn_mask.dtype == torch.bool:
        attn_mask = torch.zeros(attn_mask.shape, dtype=q.dtype, device=q.device).masked_fill(~attn_mask, -torch.inf)
    elif attn_mask is not None:
        attn_mask = attn_mask.to(q.dtype)
    return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, attn_mask=attn_mask)[0]


@contextlib.contextmanager
def flash_attention_on_meta():
    """Within: :func:`_sdpa_flash_on_meta` for every SDPA call (the core's and diffusers' VAE attention). Patched
    on the module because a ``TorchFunctionMode`` is not active when checkpointed blocks are recomputed in the
    backward pass (benchmark only; the method never does this)."""
    with unittest.mock.patch.object(F, "scaled_dot_product_attention", _sdpa_flash_on_meta):
        yield


class ArcFaceInput(nn.Module):
    """The trainer's recognizer contract (``TorchArcFace.forward``): crops in [0, 1] -> ``(255 x - 127.5) / 127.5``
    -> the network."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, crops: Tensor) -> Tensor:
        return self.net((crops * 255.0 - 127.5) / 127.5)


class StepModels:
    """The trainer's models for one measurement: frozen FLUX and VAE (bf16), recognizer (fp32, frozen),
    trainable adapter (fp32) and its AdamW, all on ``device``."""

    def __init__(self, params: FluxParams, device: torch.device, vae_config: dict = FLUX_VAE_CONFIG, recognizer=None):
        from diffusers import AutoencoderKL

        with torch.device(device):
            self.flux = Flux(params).to(torch.bfloat16).requires_grad_(False).eval()
            self.vae = FluxVAE(AutoencoderKL(**vae_config).to(torch.bfloat16), "random")
            self.recognizer = ArcFaceInput(recognizer or iresnet()).to(device).requires_grad_(False).eval()
            config = AdapterConfig(
                hidden_size=params.hidden_size,
                mlp_hidden_dim=int(params.hidden_size * params.mlp_ratio),
                depth=params.depth,
                depth_single_blocks=params.depth_single_blocks,
            )
            self.adapter = AnyPhotoAdapter(config).to(device)
        self.optimizer = torch.optim.AdamW([p for p in self.adapter.parameters() if p.requires_grad], lr=1e-4)
        self.device = device

    def weight_bytes(self) -> dict[str, int]:
        """Bytes of every model's parameters and buffers as built (what a GPU holds before the first step)."""

        def size(module: nn.Module) -> int:
            return sum(t.numel() * t.element_size() for t in [*module.parameters(), *module.buffers()])

        return {
            "flux": size(self.flux),
            "vae": size(self.vae.model),
            "recognizer": size(self.recognizer),
            "adapter": size(self.adapter),
        }

    def optimizer_state_bytes(self) -> int:
        return sum(
            t.numel() * t.element_size()
            for st in self.optimizer.state.values()
            for t in st.values()
            if t.is_floating_point()
        )


def face_landmarks(resolution: int, faces: int) -> Tensor:
    """``(faces, 5, 2)`` float32 target landmarks (pixels) of the benchmark's face boxes."""
    return torch.from_numpy(np.stack([Placement.from_box(b).landmarks for b in face_boxes(resolution, faces)])).float()


def memory_case(
    resolution: int, identities: int, device: torch.device, params: FluxParams, text_tokens: int = T5_MIN_LENGTH
):
    """A prepared training sample on ``device`` (zeros; values do not change the bytes) for a model of ``params``:
    ``(PreparedSample, t, noise)``; every face carries the face loss."""
    grid = (resolution // 16, resolution // 16)
    tokens = [
        type(tok)(tok.tokens.to(device), tok.ids.to(device), tok.index.to(device), tok.grid)
        for tok in identity_tokens(resolution, identities)
    ]
    landmarks = face_landmarks(resolution, identities)
    f32 = dict(device=device, dtype=torch.float32)
    sample = PreparedSample(
        x0=torch.zeros(1, grid[0] * grid[1], 64, **f32),
        img_ids=image_token_ids(*grid, device=device)[None],
        txt=torch.zeros(1, text_tokens, params.context_in_dim, **f32),
        y=torch.zeros(1, params.vec_in_dim, **f32),
        tokens=tokens,
        keep=torch.ones(identities, dtype=torch.bool),
        embeddings=torch.zeros(identities, 512, **f32),
        reference=torch.zeros(identities, 512, **f32),
        landmarks=landmarks,  # on the CPU, like the trainer's window arithmetic needs them
        grid=grid,
    )
    return sample, torch.full((1,), 0.5, **f32), torch.zeros(1, grid[0] * grid[1], 64, **f32)


def step_loss(
    m: StepModels,
    s: PreparedSample,
    t: Tensor,
    noise: Tensor,
    checkpoint: bool,
    face_weight: float = 0.1,
    face_decode: str = "crops",
    margin: int = DEFAULT_MARGIN,
) -> Tensor:
    """The trainer's loss (``AnyPhotoObjective.forward`` with every face kept and ``t`` under the face-loss
    gate), from the same functions; ``tests/test_train_memory.py`` checks it equals the objective's."""
    dtype = m.flux.img_in.weight.dtype
    ids = identity_inputs(m.adapter, s.tokens, s.embeddings)
    x_t = interpolate(s.x0, noise, t)
    guidance = torch.ones(1, device=x_t.device, dtype=dtype)
    txt_ids = torch.zeros(1, s.txt.shape[1], 3, device=x_t.device)
    args = (x_t.to(dtype), s.img_ids, s.txt.to(dtype), txt_ids, t.to(dtype), s.y.to(dtype), guidance, ids)
    v = m.flux.forward_anyphoto(*args, checkpoint_blocks=checkpoint)
    loss = touch_parameters(m.adapter) + flow_matching_loss(v, s.x0, noise)
    if face_weight > 0:
        latent = unpack_tokens(one_step_x0(x_t.float(), t.float(), v.float()), *s.grid)
        decode = functools.partial(decode_with_grad, m.vae)
        if face_decode == "full":
            crops = decode_face_crops_full(decode, latent, s.landmarks)
        else:
            crops = decode_face_crops(decode, latent, s.landmarks, margin)
        weights = s.keep.to(crops.device).float()
        loss = loss + face_weight * face_similarity_loss(m.recognizer(crops), s.reference, weights)
    return loss


def train_step(m: StepModels, case, checkpoint: bool, **loss_options) -> None:
    """Loss, backward, AdamW step, gradients released (``zero_grad(set_to_none=True)``), as the trainer does."""
    step_loss(m, *case, checkpoint, **loss_options).backward()
    m.optimizer.step()
    m.optimizer.zero_grad(set_to_none=True)


def face_loss_peak(m: StepModels, resolution: int, faces: int, face_decode: str) -> int:
    """Peak bytes of the face loss alone (decode -> crops -> recognizer -> loss -> backward to the latent)."""
    side = resolution // 8
    landmarks = face_landmarks(resolution, faces)
    reference = torch.zeros(faces, 512, device=m.device)

    def run():
        latent = torch.zeros(1, 16, side, side, device=m.device, requires_grad=True)
        decode = functools.partial(decode_with_grad, m.vae)
        if face_decode == "full":
            crops = decode_face_crops_full(decode, latent, landmarks)
        else:
            crops = decode_face_crops(decode, latent, landmarks)
        face_similarity_loss(m.recognizer(crops), reference).backward()

    return peak_bytes(run, m.device)


def _gib(n: int) -> str:
    return f"{n / GIB:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="meta", help="meta (default: sizes without arithmetic), cpu or cuda")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--identities", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--depth", type=int, nargs=2, default=[19, 38], metavar=("DOUBLE", "SINGLE"))
    args = parser.parse_args()
    device = torch.device(args.device)
    params = FluxParams(depth=args.depth[0], depth_single_blocks=args.depth[1])
    with flash_attention_on_meta():
        m = StepModels(params, device)
        weights = m.weight_bytes()
        train_step(m, memory_case(512, 1, device, params), checkpoint=True)  # creates the AdamW state
        state = m.optimizer_state_bytes()
        print(f"FLUX {args.depth[0]}+{args.depth[1]} blocks, hidden {params.hidden_size}, device {device}")
        print(
            "weights GiB: " + ", ".join(f"{k} {_gib(v)}" for k, v in weights.items()) + f"; AdamW state {_gib(state)}"
        )
        persistent = sum(weights.values()) + state
        print("\n## face loss alone (item 4): peak GiB, windowed crops vs full decode")
        print("| resolution | faces | crops | full decode | crops / full |")
        for resolution in args.resolutions:
            for faces in sorted({1, 4}):
                crops, full = (face_loss_peak(m, resolution, faces, how) for how in ("crops", "full"))
                print(f"| {resolution} | {faces} | {_gib(crops)} | {_gib(full)} | {crops / full:.3f} |", flush=True)
        print("\n## one training step: peak GiB allocated by the step, and with weights + AdamW state")
        print("| resolution | identities | identity tokens | checkpointing | step peak | total | seconds |")
        for resolution in args.resolutions:
            for n in args.identities:
                case = memory_case(resolution, n, device, params)
                n_tokens = sum(tok.tokens.shape[1] for tok in case[0].tokens)
                for checkpoint in (False, True):
                    start = time.perf_counter()
                    peak = peak_bytes(functools.partial(train_step, m, case, checkpoint), device)
                    print(
                        f"| {resolution} | {n} | {n_tokens} | {'on' if checkpoint else 'off'} | {_gib(peak)} | "
                        f"{_gib(peak + persistent)} | {time.perf_counter() - start:.1f} |",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
