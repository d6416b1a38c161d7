"""What the text choice costs, measured: bytes per caption of the text cache on disk, the total for a data set,
and what live encoders would occupy on every GPU instead.

* Cache: ``train.text_cache.ShardWriter`` writes ``--captions`` entries of the real FLUX shapes (T5 ``(L, 4096)``,
  CLIP pooled ``(768,)``, random values) in bf16 at L = 256 (ComfyUI's T5 padding: every caption up to 256
  tokens) and L = 512 (the longest); bytes per caption = shard file size / captions. Baseline, measured the same
  way: the former cache, one fp32 file per caption at L = 512.
* Live encoders: parameter bytes of CLIP-L and T5-XXL (the real configurations, built on the meta device) in bf16.
* Read time of one cached caption (CPU, page cache warm): min/median/max over ``--rounds``.

    python benchmarks/text_cache.py [--captions 64] [--total 700000] [--rounds 50]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from anyphoto_core.app.models.text_encoders import CLIP_L_CONFIG, T5_XXL_CONFIG  # noqa: E402
from train.text_cache import ShardWriter, TextCache  # noqa: E402

T5_DIM, CLIP_DIM = 4096, 768


def cache_bytes_per_caption(folder: Path, length: int, captions: int) -> float:
    writer = ShardWriter(folder, 0, f"{length}-512", shard_size=captions)
    for i in range(captions):
        writer.add(f"caption {i}", torch.randn(1, length, T5_DIM), torch.randn(1, CLIP_DIM))
    writer.flush()
    return sum(p.stat().st_size for p in folder.glob("shard-*.safetensors")) / captions


def former_bytes_per_caption(folder: Path) -> int:
    path = folder / "former.safetensors"
    save_file({"txt": torch.randn(1, 512, T5_DIM), "y": torch.randn(1, CLIP_DIM)}, str(path))
    return path.stat().st_size


def encoder_bytes() -> dict[str, int]:
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    with torch.device("meta"):
        models = {
            "clip_l": CLIPTextModel(CLIPTextConfig(**CLIP_L_CONFIG)),
            "t5xxl": T5EncoderModel(T5Config(**T5_XXL_CONFIG)),
        }
    return {k: 2 * sum(p.numel() for p in m.parameters()) for k, m in models.items()}


def read_seconds(folder: Path, length: int, rounds: int) -> list[float]:
    cache = TextCache(folder, length, 512)
    times = []
    for i in range(rounds):
        start = time.perf_counter()
        cache(f"caption {i % len(cache.index)}")
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--captions", type=int, default=64)
    parser.add_argument("--total", type=int, default=700_000)
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        former = former_bytes_per_caption(tmp)
        rows = {"former (fp32, L=512, one file per caption)": former}
        reads = {}
        for length in (256, 512):
            folder = tmp / f"L{length}"
            rows[f"bf16 shards, L={length}"] = cache_bytes_per_caption(folder, length, args.captions)
            reads[length] = read_seconds(folder, length, args.rounds)
    print(f"| cache | bytes/caption | total for {args.total} captions | x former |")
    print("| --- | ---: | ---: | ---: |")
    for name, b in rows.items():
        print(f"| {name} | {b:,.0f} | {b * args.total / 1e12:.2f} TB | {b / former:.3f} |")
    enc = encoder_bytes()
    gib = {k: f"{v / 2**30:.2f} GiB" for k, v in enc.items()}
    print(f"live encoders in bf16 on every GPU: CLIP-L {gib['clip_l']}, T5-XXL {gib['t5xxl']}")
    for length, t in reads.items():
        ms = sorted(1e3 * x for x in t)
        spread = f"min {ms[0]:.2f} / median {statistics.median(ms):.2f} / max {ms[-1]:.2f} ms"
        print(f"read one cached caption, L={length}: {spread}")
    print(json.dumps({"bytes_per_caption": rows, "encoder_bytes_bf16": enc}))


if __name__ == "__main__":
    main()
