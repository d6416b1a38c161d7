"""Shared pieces of the forward/attention cost benchmarks: environment, timing, peak memory,
identity layouts built with the core, and the token-count cost floor.

Timing: one warm-up round (on CPU it also measures memory), then ``rounds`` interleaved rounds in
which every configuration runs once, in forward order on even rounds and reversed on odd rounds
(so no configuration always runs first or last); a configuration's per-round ratio is its time over
the baseline's time in the same round, so slow drift of a shared machine cancels. Every round's
ratio is kept and reported with its min / median / max: on a shared machine the spread, not the
median alone, says what a claim is worth.

Peak memory: on CUDA, ``torch.cuda.max_memory_allocated`` minus what was allocated before the call.
On CPU, :class:`TensorMemoryMeter` (a ``TorchDispatchMode``) adds up the storages of the tensors
every op returns and drops them when they are freed: it sees every tensor torch allocates at
operator level (inputs and weights that existed before the call are excluded), but not scratch
memory private to a kernel (oneDNN/MKL workspaces, the CPU flash-attention kernel's per-thread
buffers) nor allocator caching and fragmentation.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import sys
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from anyphoto_core.canvas import FacePatch  # noqa: E402
from anyphoto_core.conditioning import build_canvases, encode_canvas_tokens  # noqa: E402
from anyphoto_core.geometry import arcface_template  # noqa: E402
from anyphoto_core.placements import Placement  # noqa: E402
from anyphoto_core.tokens import PIXELS_PER_TOKEN, IdentityTokens  # noqa: E402

#: Nominal face-box sides (pixels at 1024x1024; scaled with the canvas) of identities 1..8. The
#: pasted ArcFace crop is ~1.44x the nominal box, so these give ~80-256 tokens each at 1024^2.
FACE_BOX_SIDES_1024 = (160, 128, 112, 144, 176, 96, 128, 160)


def environment(device: torch.device, dtype: torch.dtype) -> dict:
    """What the numbers were measured on."""
    env = {
        "torch": torch.__version__,
        "device": str(device),
        "dtype": str(dtype).replace("torch.", ""),
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "machine": platform.processor() or platform.machine(),
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


#: ``--clock`` choices: ``wall`` = elapsed seconds (``time.perf_counter``); ``cpu`` = CPU seconds of this
#: process (``time.process_time``), which on a CPU shared with other jobs counts the work done rather
#: than the time spent waiting for a core. Use ``cpu`` with ``--threads 1`` (with more threads it also
#: counts the threads' spin-waiting); CUDA timing is always wall.
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}

#: ``--dtype`` choices.
DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32}


def timed(fn: Callable[[], object], device: torch.device, clock: str = "wall") -> float:
    """Seconds of one call on ``clock`` (:data:`CLOCKS`; device synchronized before and after)."""
    now = CLOCKS["wall" if device.type == "cuda" else clock]
    synchronize(device)
    start = now()
    fn()
    synchronize(device)
    return now() - start


def spread(values: Sequence[float]) -> dict[str, float]:
    """``{"min", "median", "max"}`` of ``values`` (at least one)."""
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def spread_text(s: dict[str, float] | None, digits: int = 3) -> str:
    """A :func:`spread` as ``"median [min-max]"``, e.g. ``"1.117 [1.080-1.150]"`` (``"-"`` for None)."""
    if not s:
        return "-"
    return f"{s['median']:.{digits}f} [{s['min']:.{digits}f}-{s['max']:.{digits}f}]"


def format_spread(values: Sequence[float], digits: int = 3) -> str:
    """``spread_text(spread(values))``."""
    return spread_text(spread(values), digits)


def round_order(names: Sequence[str], round_index: int) -> list[str]:
    """Forward order on even rounds, reversed on odd rounds."""
    return list(names) if round_index % 2 == 0 else list(reversed(names))


#: ``on_round(round_number, seconds, ratios)``: called after each timed round (numbered from 1) with that
#: round's ``{name: seconds}`` and ``{name: seconds / baseline seconds}``.
RoundCallback = Callable[[int, dict[str, float], dict[str, float]], None]


def paired_rounds(
    fns: dict[str, Callable[[], object]],
    baseline: str,
    rounds: int,
    device: torch.device,
    clock: str = "wall",
    on_round: RoundCallback | None = None,
) -> dict:
    """Per configuration: every round's seconds and ratio to ``baseline``, their spreads, peak bytes.

    Returns ``{name: {"seconds", "ratio" (medians), "seconds_rounds", "ratio_rounds" (lists, one per
    timed round), "seconds_spread", "ratio_spread" ({min, median, max}), "samples", "peak_bytes"}}``.
    Round 0 is the warm-up: not timed; on CPU it measures peak memory (:func:`peak_bytes`) so
    that no extra run is needed. On CUDA memory is measured after the timed rounds, so one-time
    library workspaces allocated by the first calls are not charged to the first configuration.
    ``on_round`` (:data:`RoundCallback`, e.g. a :class:`RoundPrinter`) sees each timed round as soon
    as it ends, so a run stopped part-way still leaves the rounds it finished.
    """
    times = {name: [] for name in fns}
    peaks = {}
    for round_index in range(rounds + 1):
        for name in round_order(list(fns), round_index - 1):
            if round_index:
                times[name].append(timed(fns[name], device, clock))
            elif device.type == "cpu":
                peaks[name] = peak_bytes(fns[name], device)
            else:
                fns[name]()
        if round_index and on_round is not None:
            seconds = {name: ts[-1] for name, ts in times.items()}
            on_round(round_index, seconds, {name: t / seconds[baseline] for name, t in seconds.items()})
    if device.type != "cpu":
        peaks = {name: peak_bytes(fn, device) for name, fn in fns.items()}
    out = {}
    for name, ts in times.items():
        ratios = [t / b for t, b in zip(ts, times[baseline], strict=True)]
        out[name] = {
            "seconds": statistics.median(ts),
            "ratio": statistics.median(ratios),
            "seconds_rounds": ts,
            "ratio_rounds": ratios,
            "seconds_spread": spread(ts),
            "ratio_spread": spread(ratios),
            "samples": len(ts),
            "peak_bytes": peaks[name],
        }
    return out


class RoundPrinter:
    """A :data:`RoundCallback` that prints each timed round as it ends (flushed).

    Text: ``"  512 round 3/7: pruned x2 1.081, ..."`` (ratio to the baseline per configuration). JSON
    (``as_json``): one object per round, ``{"kind": "round", **context, "round", "rounds", "seconds",
    "ratio"}``, on the same stream as the rows (``"kind": "row"``), so the JSON of a stopped run still holds
    every finished round; :func:`summarize_rounds` turns such a stream back into spreads.
    """

    def __init__(self, context: dict, rounds: int, as_json: bool, stream=None):
        self.context, self.rounds, self.as_json, self.stream = context, rounds, as_json, stream

    def __call__(self, round_number: int, seconds: dict[str, float], ratios: dict[str, float]) -> None:
        if self.as_json:
            record = {"kind": "round", **self.context, "round": round_number, "rounds": self.rounds}
            line = json.dumps({**record, "seconds": seconds, "ratio": ratios})
        else:
            label = " ".join(str(v) for v in self.context.values())
            line = f"{label} round {round_number}/{self.rounds}: " + ", ".join(
                f"{name} {ratio:.3f}" for name, ratio in ratios.items()
            )
        print(line, file=self.stream or sys.stdout, flush=True)


def summarize_rounds(lines: Iterable[str], keys: Sequence[str] = ("size",)) -> dict[tuple, dict[str, dict]]:
    """Spreads of the round records (:class:`RoundPrinter` JSON) in ``lines``; other lines are skipped.

    Returns ``{(context values of keys...): {name: {"rounds": n, "ratio": spread, "seconds": spread}}}``.
    """
    rounds: dict[tuple, dict[str, dict[str, list]]] = {}
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(record, dict) or record.get("kind") != "round":
            continue
        group = rounds.setdefault(tuple(record.get(k) for k in keys), {})
        for name, ratio in record["ratio"].items():
            values = group.setdefault(name, {"ratio": [], "seconds": []})
            values["ratio"].append(ratio)
            values["seconds"].append(record["seconds"][name])
    return {
        key: {
            name: {"rounds": len(v["ratio"]), "ratio": spread(v["ratio"]), "seconds": spread(v["seconds"])}
            for name, v in group.items()
        }
        for key, group in rounds.items()
    }


class TensorMemoryMeter(TorchDispatchMode):
    """Peak bytes of tensor storages alive at once among those allocated inside the mode (any device,
    the meta device included: there it counts the bytes the same ops would allocate, without computing)."""

    def __init__(self):
        super().__init__()
        self._live: dict[int, int] = {}
        self.current = 0
        self.peak = 0

    def _release(self, key: int) -> None:
        self.current -= self._live.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        # an output on an input's storage (a view such as ``weight.t()`` in every linear, an in-place op)
        # allocates nothing; storages are told apart by identity, not data pointer (meta storages have none)
        inputs = {t.untyped_storage()._cdata for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)}
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                key, nbytes = storage._cdata, storage.nbytes()
                if nbytes and key not in self._live and key not in inputs:
                    self._live[key] = nbytes
                    self.current += nbytes
                    self.peak = max(self.peak, self.current)
                    weakref.finalize(storage, self._release, key)
        return out


def peak_bytes(fn: Callable[[], object], device: torch.device) -> int:
    """Peak bytes allocated during ``fn()`` beyond what was allocated before (see module doc)."""
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.empty_cache()
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    with TensorMemoryMeter() as meter:
        fn()
    return meter.peak


def face_boxes(size: int, count: int) -> list[tuple[float, float, float, float]]:
    """``count`` (<= 8) non-overlapping face boxes on a ``size`` square: a 4x2 grid of cells."""
    if count > len(FACE_BOX_SIDES_1024):
        raise ValueError(f"at most {len(FACE_BOX_SIDES_1024)} identities, got {count}")
    cell_w, cell_h = size / 4, size / 2
    boxes = []
    for i in range(count):
        side = FACE_BOX_SIDES_1024[i] * size / 1024
        cx, cy = (i % 4 + 0.5) * cell_w, (i // 4 + 0.5) * cell_h
        boxes.append((cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2))
    return boxes


def _stand_in_vae(images: torch.Tensor) -> torch.Tensor:
    """``(N, 3, H, W)`` -> ``(N, 16, H/8, W/8)``; token values do not change the cost."""
    pooled = F.avg_pool2d(images, 8)
    return pooled.repeat(1, 6, 1, 1)[:, :16]


def identity_tokens(size: int, count: int, pruned: bool = True) -> list[IdentityTokens]:
    """Identity tokens of ``count`` faces on a ``size`` square, from real canvases.

    Canvases are built by the core (:func:`build_canvases`, an opaque 512 px ArcFace-aligned
    patch per identity, like a crop from a photo) and pruned with the default majority rule;
    ``pruned=False`` keeps every canvas token (OminiControl-style full-size condition).
    """
    patch = FacePatch.opaque(np.full((512, 512, 3), 128, np.uint8), arcface_template(512))
    placements = [Placement.from_box(b) for b in face_boxes(size, count)]
    canvases = build_canvases([patch] * count, placements, (size, size))
    if not pruned:
        canvases = [dataclasses.replace(c, mask=np.ones_like(c.mask)) for c in canvases]
    return encode_canvas_tokens(canvases, _stand_in_vae, rule="majority", type_index=1.0)


def image_tokens(size: int) -> int:
    return (size // PIXELS_PER_TOKEN) ** 2


def star_pairs(n_global: int, lengths: Sequence[int]) -> int:
    """Query-key pairs the star topology needs: globals see all, identity i sees globals + itself."""
    m = sum(lengths)
    return n_global * (n_global + m) + sum(n * (n_global + n) for n in lengths)


def block_flops(n_global: int, lengths: Sequence[int], hidden: int, mlp_hidden: int, lora_rank: int) -> int:
    """FLOPs of one FLUX block over ``n_global`` text + image tokens and identities of ``lengths``.

    Per token and block the linears cost ``2 * (4 C^2 + 2 C F)`` FLOPs (``F`` = MLP width; double:
    qkv + proj + two MLP linears, single: linear1 + linear2 -- equal), attention ``4 C`` FLOPs per
    visible query-key pair (``QK^T`` and ``PV``; star topology, :func:`star_pairs`), and each
    identity token adds the LoRA ``2 r * sum(fan_in + fan_out)`` over the block's targets
    (double-block targets ``8C + 2F``; single ``6C + 2F``, a 0.01% difference in the ratios).
    Modulation, norms and RoPE are ignored (per-row, well under 1%).
    """
    c, f, r = hidden, mlp_hidden, lora_rank
    per_token = 2 * (4 * c * c + 2 * c * f)
    lora_per_id_token = 2 * r * ((c + 3 * c) + (c + c) + (c + f) + (f + c))  # double-block targets
    m = sum(lengths)
    return per_token * (n_global + m) + lora_per_id_token * m + 4 * c * star_pairs(n_global, lengths)


def forward_floor(n_global: int, lengths: Sequence[int], hidden: int, mlp_hidden: int, lora_rank: int) -> float:
    """Ideal time ratio AnyPhoto / stock per FLUX block (the same for double and single blocks):
    :func:`block_flops` with the identities over :func:`block_flops` without them."""
    dims = (hidden, mlp_hidden, lora_rank)
    return block_flops(n_global, lengths, *dims) / block_flops(n_global, (), *dims)


def benchmark_arg_parser(description: str, quick_help: str) -> argparse.ArgumentParser:
    """The options every benchmark script shares: ``--json --quick --threads --rounds --cpu --clock --dtype``."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="one JSON object per row")
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds after one warm-up round")
    parser.add_argument("--cpu", action="store_true", help="stay on CPU even if CUDA is available")
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="wall",
        help="wall: elapsed seconds; cpu: this process's CPU seconds, robust to other jobs on a shared "
        "machine (use with --threads 1); CUDA is always timed on the wall clock",
    )
    parser.add_argument(
        "--dtype",
        choices=sorted(DTYPES),
        default="bfloat16",
        help="weights and activations (FLUX runs in bf16; a CPU without AVX512-BF16/AMX emulates bf16 matmuls "
        "~8x slower than float32, which makes float32 the only affordable choice there)",
    )
    return parser
