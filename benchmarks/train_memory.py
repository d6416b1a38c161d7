"""Training memory of the real configuration (FLUX.1-dev, 512^2 and 1024^2, 1-4 identities, with and
without gradient checkpointing), computed from measured per-component numbers.

Every number comes from a real architecture with random weights; nothing is typed in by hand:

* **weights**: parameter bytes of FLUX.1-dev, the FLUX VAE, T5-XXL and CLIP-L built on the ``meta`` device
  from their real configs, stored in ``--weight-dtype`` (bf16); the AnyPhoto adapter (rank 16) in fp32;
* **adapter training state**: one real AdamW step on the real-size adapter under the memory meter
  (gradients + two moments);
* **transformer activations**: one real-width FLUX double block and one single block (hidden 3072, 24
  heads, random weights) run through the core AnyPhoto forward with identity tokens and LoRA; the bytes
  still alive after the forward (what backward needs) at three token mixes give ``a + b * global + c *
  identity`` per block, by least squares; with checkpointing a block keeps only its input, measured the same
  way; peak = every block's retained bytes (+ one block's full activations when checkpointing, recomputed
  in backward) + the backward transient of one block (peak - retained, measured);
* **face-loss decode**: the FLUX VAE decoder with gradients at two sizes gives bytes per output pixel;
  the full decode costs that x the image, the window decode (``train/face_crops.py``, checkpointed, one
  window at a time) x the largest face window; windows come from the real face layouts of
  ``benchmarks/_common.py`` and ``train.face_crops.latent_windows``.

Meter: on CUDA ``torch.cuda.max_memory_allocated``; on CPU ``TensorMemoryMeter`` (operator-level tensor
storages; not allocator caching or kernel scratch). On CPU the activations are measured in float32 (bf16
matmuls are too slow on a shared CPU): the bf16 column halves them, which is what bf16 activations cost
up to the few fp32 statistics (norms, attention log-sum-exp). On a GPU the script measures in bf16 directly.

    nice -n 10 python benchmarks/train_memory.py [--json] [--cpu]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import TensorMemoryMeter, face_boxes, identity_tokens, synchronize  # noqa: E402

from anyphoto_core.adapter import AdapterConfig, AnyPhotoAdapter  # noqa: E402
from anyphoto_core.app.models.vae import FLUX_VAE_CONFIG  # noqa: E402
from anyphoto_core.flux import Flux, FluxParams  # noqa: E402
from anyphoto_core.identity import IdentityInputs  # noqa: E402
from anyphoto_core.placements import Placement  # noqa: E402
from anyphoto_core.tokens import PIXELS_PER_TOKEN, image_token_ids, prune_canvas_tokens  # noqa: E402
from train.face_crops import latent_windows  # noqa: E402

GIB = 2**30
TXT_TOKENS = 512  # T5 sequence length of FLUX.1-dev
#: (global, identity) token mixes at which one block is measured (global = text + image).
BLOCK_POINTS = ((96, 32), (192, 32), (96, 96))


class Meter:
    """Peak and current bytes on CUDA (allocator) or CPU (:class:`TensorMemoryMeter`)."""

    def __init__(self, device: torch.device):
        self.device = device

    def __enter__(self):
        if self.device.type == "cuda":
            synchronize(self.device)
            torch.cuda.empty_cache()
            self.base = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self.cpu = TensorMemoryMeter().__enter__()
        return self

    def __exit__(self, *exc):
        if self.device.type != "cuda":
            self.cpu.__exit__(*exc)

    @property
    def current(self) -> int:
        if self.device.type == "cuda":
            synchronize(self.device)
            return torch.cuda.memory_allocated(self.device) - self.base
        return self.cpu.current

    @property
    def peak(self) -> int:
        if self.device.type == "cuda":
            synchronize(self.device)
            return torch.cuda.max_memory_allocated(self.device) - self.base
        return self.cpu.peak


def parameter_bytes(dtype: torch.dtype) -> dict[str, int]:
    """Frozen weights of the real architectures (built on ``meta``, no memory) in ``dtype``."""
    from diffusers import AutoencoderKL
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    size = torch.finfo(dtype).bits // 8
    t5 = T5Config(d_model=4096, d_ff=10240, d_kv=64, num_heads=64, num_layers=24, vocab_size=32128)
    t5.feed_forward_proj = "gated-gelu"
    clip = CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12)
    with torch.device("meta"):
        models = {
            "FLUX.1-dev transformer": Flux(FluxParams.flux1_dev()),
            "FLUX VAE": AutoencoderKL(**{k: v for k, v in FLUX_VAE_CONFIG.items() if k != "shift_factor"}),
            "T5-XXL encoder": T5EncoderModel(t5),
            "CLIP-L text": CLIPTextModel(clip),
        }
    return {name: sum(p.numel() for p in m.parameters()) * size for name, m in models.items()}


def adapter_training_bytes(device: torch.device) -> dict[str, int]:
    """The real-size adapter (fp32) and what one AdamW step adds (gradients + moments), measured."""
    adapter = AnyPhotoAdapter(AdapterConfig()).to(device)
    params = [p for p in adapter.parameters() if p.requires_grad]
    weights = sum(p.numel() * p.element_size() for p in params)
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    with Meter(device) as meter:
        loss = sum((p.float() ** 2).sum() for p in params)
        loss.backward()
        optimizer.step()
        del loss
        state = meter.current
    return {"adapter weights (fp32)": weights, "adapter grads + AdamW state": state}


def _identity_inputs(width: int, n_identity: int, adapter: AnyPhotoAdapter, device, dtype) -> IdentityInputs:
    """One identity of ``n_identity`` tokens on a ``1 x width`` token grid (random latent)."""
    latent = torch.randn(1, 16, 2, 2 * width, device=device, dtype=dtype)
    keep = np.zeros((1, width), bool)
    keep[0, :n_identity] = True
    tokens = prune_canvas_tokens(latent, keep)
    delta = adapter.modulation_offsets(torch.randn(1, 512, device=device))
    return IdentityInputs.from_tokens([tokens], delta.to(dtype), lora_delta=adapter.lora_delta)


def block_bytes(kind: str, n_global: int, n_identity: int, checkpoint: bool, device, dtype) -> tuple[int, int]:
    """(retained after forward, peak over forward + backward) of one real-width block with identities."""
    params = FluxParams(depth=1 if kind == "double" else 0, depth_single_blocks=1 if kind == "single" else 0)
    torch.manual_seed(0)
    flux = Flux(params).to(device=device, dtype=dtype).requires_grad_(False)
    adapter = AnyPhotoAdapter(AdapterConfig(depth=params.depth, depth_single_blocks=params.depth_single_blocks))
    adapter = adapter.to(device)
    for p in adapter.parameters():  # non-zero LoRA B so the LoRA path is a real gradient path
        torch.nn.init.normal_(p, std=0.01)
    n_img = n_global - TXT_TOKENS // 16
    n_txt = n_global - n_img
    width = max(n_img, n_identity)
    img = torch.randn(1, n_img, 64, device=device, dtype=dtype)
    img_ids = image_token_ids(1, width, device=device)[None, :n_img]
    txt = torch.randn(1, n_txt, params.context_in_dim, device=device, dtype=dtype)
    txt_ids = torch.zeros(1, n_txt, 3, device=device)
    vec_args = (torch.full((1,), 0.5, device=device, dtype=dtype), torch.randn(1, 768, device=device, dtype=dtype))
    guidance = torch.full((1,), 1.0, device=device, dtype=dtype)
    identities = _identity_inputs(width, n_identity, adapter, device, dtype)
    with Meter(device) as meter:
        out = flux.forward_anyphoto(
            img, img_ids, txt, txt_ids, *vec_args, guidance, identities, checkpoint_blocks=checkpoint
        )
        retained = meter.current
        out.float().square().mean().backward()
        peak = meter.peak
    return retained, peak


def fit_block(kind: str, checkpoint: bool, device, dtype) -> dict[str, list[float]]:
    """Least-squares ``bytes = a + b * global + c * identity`` for retained and peak bytes of one block."""
    rows, retained, peak = [], [], []
    for n_global, n_identity in BLOCK_POINTS:
        r, p = block_bytes(kind, n_global, n_identity, checkpoint, device, dtype)
        rows.append([1.0, n_global, n_identity])
        retained.append(r)
        peak.append(p)
        print(f"  {kind} block, checkpoint={checkpoint}: global {n_global}, identity {n_identity}: "
              f"retained {r / 2**20:.1f} MiB, peak {p / 2**20:.1f} MiB", file=sys.stderr, flush=True)
    a = np.asarray(rows)
    return {
        "retained": np.linalg.lstsq(a, np.asarray(retained, float), rcond=None)[0].tolist(),
        "peak": np.linalg.lstsq(a, np.asarray(peak, float), rcond=None)[0].tolist(),
    }


def vae_decode_bytes_per_pixel(device, dtype, sides=(64, 128)) -> tuple[float, float]:
    """(intercept, bytes per output pixel) of the FLUX VAE decoder with gradients w.r.t. the latent."""
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    config = {k: v for k, v in FLUX_VAE_CONFIG.items() if k != "shift_factor"}
    vae = AutoencoderKL(**config).to(device=device, dtype=dtype).requires_grad_(False)
    peaks = []
    for side in sides:
        latent = torch.randn(1, 16, side // 8, side // 8, device=device, dtype=dtype, requires_grad=True)
        with Meter(device) as meter:
            vae.decode(latent).sample.float().square().mean().backward()
            peaks.append(meter.peak)
        print(f"  VAE decode with grad at {side}^2: peak {peaks[-1] / 2**20:.1f} MiB", file=sys.stderr, flush=True)
    pixels = np.asarray([s * s for s in sides], float)
    slope = (peaks[1] - peaks[0]) / (pixels[1] - pixels[0])
    return float(peaks[0] - slope * pixels[0]), float(slope)


def largest_window_pixels(resolution: int, identities: int, margin: int = 8) -> int:
    """Output pixels of the largest face window (``train.face_crops``) of the benchmark face layout."""
    landmarks = torch.tensor(np.stack([Placement.from_box(b).landmarks for b in face_boxes(resolution, identities)]))
    windows = latent_windows(landmarks.float(), (resolution // 8, resolution // 8), margin)
    return max((b - t) * (r - left) for t, left, b, r in windows) * 64


def table(measured: dict, weight_bytes: dict, adapter_bytes: dict, scale: float) -> list[dict]:
    """Rows for 512^2/1024^2 x 1-4 identities x checkpointing; activations x ``scale`` (1 or bf16's 0.5)."""
    flux = FluxParams.flux1_dev()
    fixed = weight_bytes["FLUX.1-dev transformer"] + weight_bytes["FLUX VAE"] + sum(adapter_bytes.values())
    text = weight_bytes["T5-XXL encoder"] + weight_bytes["CLIP-L text"]
    intercept, per_pixel = measured["vae_decode"]
    rows = []
    for resolution in (512, 1024):
        n_global = TXT_TOKENS + (resolution // PIXELS_PER_TOKEN) ** 2
        for count in range(1, 5):
            n_identity = sum(t.count for t in identity_tokens(resolution, count))
            for checkpoint in (False, True):
                blocks = {}
                for kind, depth in (("double", flux.depth), ("single", flux.depth_single_blocks)):
                    coef = measured[f"{kind}_ckpt" if checkpoint else kind]
                    full = measured[kind]
                    retained = float(np.dot(coef["retained"], [1, n_global, n_identity]))
                    peak = float(np.dot(full["peak"], [1, n_global, n_identity]))
                    full_retained = float(np.dot(full["retained"], [1, n_global, n_identity]))
                    blocks[kind] = (depth * retained, peak - (0 if checkpoint else full_retained))
                activations = sum(v[0] for v in blocks.values()) + max(v[1] for v in blocks.values())
                window = largest_window_pixels(resolution, count)
                decode_windows = intercept + per_pixel * window
                decode_full = intercept + per_pixel * resolution**2
                rows.append(
                    {
                        "resolution": resolution,
                        "identities": count,
                        "identity_tokens": n_identity,
                        "checkpointing": checkpoint,
                        "weights_gib": fixed / GIB,
                        "text_encoders_gib": text / GIB,
                        "transformer_activations_gib": scale * activations / GIB,
                        "face_decode_windows_gib": scale * decode_windows / GIB,
                        "face_decode_full_gib": scale * decode_full / GIB,
                        "total_gib": (fixed + scale * (activations + decode_windows)) / GIB,
                    }
                )
    return rows


def markdown(rows: list[dict], measured_dtype: str) -> str:
    head = (
        "| res | ids | id tokens | ckpt | weights GiB | activations GiB | face decode: windows / full GiB | "
        f"total GiB (+ text encoders) |\n|---|---:|---:|---|---:|---:|---:|---:|"
    )
    lines = [f"activations measured in {measured_dtype}, shown for bf16", head]
    for r in rows:
        lines.append(
            f"| {r['resolution']}² | {r['identities']} | {r['identity_tokens']} | "
            f"{'yes' if r['checkpointing'] else 'no'} | {r['weights_gib']:.1f} | "
            f"{r['transformer_activations_gib']:.1f} | {r['face_decode_windows_gib']:.2f} / "
            f"{r['face_decode_full_gib']:.2f} | {r['total_gib']:.1f} (+{r['text_encoders_gib']:.1f}) |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print the measurements and rows as JSON")
    parser.add_argument("--cpu", action="store_true", help="stay on CPU even if CUDA is available")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cuda = torch.cuda.is_available() and not args.cpu
    device = torch.device("cuda" if cuda else "cpu")
    dtype = torch.bfloat16 if cuda else torch.float32
    scale = 1.0 if dtype == torch.bfloat16 else 0.5
    weight_bytes = parameter_bytes(torch.bfloat16)
    adapter_bytes = adapter_training_bytes(device)
    measured = {"vae_decode": vae_decode_bytes_per_pixel(device, dtype)}
    for kind in ("double", "single"):
        measured[kind] = fit_block(kind, False, device, dtype)
        measured[f"{kind}_ckpt"] = fit_block(kind, True, device, dtype)
    rows = table(measured, weight_bytes, adapter_bytes, scale)
    if args.json:
        print(json.dumps({"weights": weight_bytes, "adapter": adapter_bytes, "measured": measured, "rows": rows}))
    else:
        print(markdown(rows, str(dtype).replace("torch.", "")))
        print(f"\nVAE decode with grad: {measured['vae_decode'][1]:.0f} B per output pixel ({dtype}); components:")
        for name, value in {**weight_bytes, **adapter_bytes}.items():
            print(f"  {name}: {value / GIB:.2f} GiB")


if __name__ == "__main__":
    main()
