"""Precomputed caption embeddings: bf16, trimmed to ComfyUI's T5 length, sharded per process, written atomically.

Layout of ``model.text_cache`` (a folder on storage every training node can read):
``shard-r<rank>-<seq>.safetensors``, each holding up to ``shard_size`` captions as tensors
``txt.<key>`` ``(L, 4096)`` and ``y.<key>`` ``(768,)`` in bfloat16, ``key`` = first 32 hex digits of
``sha256(caption)``; ``L`` = the caption's T5 length (``TextEncoders.t5_length``: at least
``model.t5_min_length`` = 256 positions like ComfyUI, more for longer captions, at most ``model.t5_max_length``).
Shard metadata names the cache format and the T5 lengths; a cache built with other lengths is refused.

``python -m train encode-text`` fills it (:func:`encode_captions`): process ``rank`` of ``world`` (the
``RANK``/``WORLD_SIZE`` that ``accelerate launch``/``torchrun`` set, or one process) encodes every
``world``-th missing caption and writes only its own shards, each to a name no other process uses
(``.tmp-r<rank>-<pid>`` first, then renamed), so processes never collide and a crash loses at most the
shard in flight; a rerun skips what is there. Training only reads (:class:`TextCache`): the text encoders
are not loaded, and a caption that is not cached is an error naming the command that adds it.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from anyphoto_core.adapter import default_file_mode

FORMAT = "anyphoto-text-cache/1"
_SHARD = re.compile(r"shard-r(\d+)-(\d+)\.safetensors")


class TextCacheError(ValueError):
    """A cache that does not fit the config, or lacks captions; the message says how to fix it."""


def caption_key(caption: str) -> str:
    return hashlib.sha256(caption.encode()).hexdigest()[:32]


def _lengths(t5_min_length: int, t5_max_length: int) -> str:
    return f"{t5_min_length}-{t5_max_length}"


class TextCache:
    """Read side: ``cache(caption)`` -> ``txt`` ``(1, L, 4096)``, ``y`` ``(1, 768)`` float32 (bf16 values).

    The index (key -> shard) is built from the shard headers when the object is made.
    """

    def __init__(self, folder: str | Path, t5_min_length: int, t5_max_length: int):
        self.folder = Path(folder)
        self.lengths = _lengths(t5_min_length, t5_max_length)
        self.index: dict[str, Path] = {}
        for shard in sorted(self.folder.glob("shard-r*.safetensors")) if self.folder.is_dir() else []:
            with safe_open(str(shard), "pt") as f:
                meta = f.metadata() or {}
                keys = [k[4:] for k in f.keys() if k.startswith("txt.")]
            if meta.get("format") != FORMAT or meta.get("t5_lengths") != self.lengths:
                raise TextCacheError(
                    f"{shard} was written with format {meta.get('format')!r}, T5 lengths {meta.get('t5_lengths')!r}; "
                    f"this run needs {FORMAT!r}, {self.lengths!r} (model.t5_min_length-model.t5_max_length). "
                    "Use another model.text_cache folder or rebuild it with `python -m train encode-text`"
                )
            self.index.update(dict.fromkeys(keys, shard))

    def __contains__(self, caption: str) -> bool:
        return caption_key(caption) in self.index

    def missing(self, captions: Iterable[str]) -> list[str]:
        """The distinct captions of ``captions`` that are not cached, in first-seen order."""
        return [c for c in dict.fromkeys(captions) if c not in self]

    @functools.lru_cache(maxsize=16)  # noqa: B019 - a few open shards per cache object, freed with it
    def _open(self, shard: Path):
        return safe_open(str(shard), "pt")

    def __call__(self, caption: str) -> tuple[Tensor, Tensor]:
        key = caption_key(caption)
        shard = self.index.get(key)
        if shard is None:
            raise TextCacheError(
                f"caption {caption[:60]!r} is not in the text cache {self.folder}; run "
                "`python -m train encode-text --config <your config>` (it adds what is missing)"
            )
        f = self._open(shard)
        return f.get_tensor(f"txt.{key}")[None].float(), f.get_tensor(f"y.{key}")[None].float()


class ShardWriter:
    """Write side for one process: buffers entries and writes ``shard-r<rank>-<seq>`` files atomically."""

    def __init__(self, folder: str | Path, rank: int, lengths: str, shard_size: int = 1024):
        self.folder, self.rank, self.lengths, self.shard_size = Path(folder), rank, lengths, shard_size
        self.folder.mkdir(parents=True, exist_ok=True)
        names = [_SHARD.fullmatch(p.name) for p in self.folder.iterdir()]
        used = [int(m.group(2)) for m in names if m and int(m.group(1)) == rank]
        self.seq = max(used, default=-1) + 1
        self.buffer: dict[str, Tensor] = {}

    def add(self, caption: str, txt: Tensor, y: Tensor) -> None:
        """``txt`` (1, L, D), ``y`` (1, V) any float dtype; stored as bf16."""
        key = caption_key(caption)
        self.buffer[f"txt.{key}"] = txt[0].to(torch.bfloat16).contiguous().cpu()
        self.buffer[f"y.{key}"] = y[0].to(torch.bfloat16).contiguous().cpu()
        if len(self.buffer) >= 2 * self.shard_size:
            self.flush()

    def flush(self) -> Path | None:
        if not self.buffer:
            return None
        final = self.folder / f"shard-r{self.rank:05d}-{self.seq:06d}.safetensors"
        tmp = final.with_name(f"{final.name}.tmp-r{self.rank}-{os.getpid()}")
        save_file(self.buffer, str(tmp), metadata={"format": FORMAT, "t5_lengths": self.lengths})
        os.chmod(tmp, default_file_mode())
        os.replace(tmp, final)
        self.buffer, self.seq = {}, self.seq + 1
        return final


def encode_captions(
    captions: Iterable[str],
    encode: Callable[[str], tuple[Tensor, Tensor]],
    folder: str | Path,
    t5_min_length: int,
    t5_max_length: int,
    rank: int = 0,
    world: int = 1,
    shard_size: int = 1024,
    progress: bool = True,
) -> int:
    """Encode this process's share of the distinct captions not yet in ``folder``; returns how many it wrote."""
    from tqdm.auto import tqdm

    mine = sorted(set(captions))[rank::world]  # owned by this rank whatever the others have written already
    todo = TextCache(folder, t5_min_length, t5_max_length).missing(mine)
    writer = ShardWriter(folder, rank, _lengths(t5_min_length, t5_max_length), shard_size)
    for caption in tqdm(todo, desc=f"encode-text rank {rank}/{world}", unit="caption", disable=not progress):
        writer.add(caption, *encode(caption))
    writer.flush()
    return len(todo)


def training_captions(manifest, data) -> list[str]:
    """Every caption training can ask for: the manifest's, plus "" when ``data.caption_dropout`` > 0."""
    return [r.caption for r in manifest.images] + ([""] if data.caption_dropout > 0 else [])


def check_captions(manifest, data, text) -> None:
    """Before the first step: no image without a caption unless ``data.allow_missing_captions``, and with a
    :class:`TextCache`, every caption cached. Raises :class:`TextCacheError` naming the fix."""
    empty = [r.image for r in manifest.images if not r.caption.strip()]
    if empty and not data.allow_missing_captions:
        raise TextCacheError(
            f"{len(empty)} of {len(manifest.images)} manifest images have no caption (e.g. {empty[0]}). Give each "
            "image a <stem>.txt caption and preprocess again, or set data.allow_missing_captions=true to train "
            "them with the empty caption"
        )
    if isinstance(text, TextCache):
        missing = text.missing(training_captions(manifest, data))
        if missing:
            raise TextCacheError(
                f"{len(missing)} captions are not in the text cache {text.folder} (e.g. {missing[0][:60]!r}); run "
                "`python -m train encode-text --config <your config>` first (it adds only what is missing)"
            )
