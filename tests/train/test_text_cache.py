"""Text cache: bf16 at ComfyUI's T5 length, per-process shards written by 2 concurrent processes, training reads
it without loading the encoders; missing captions and missing cache entries are errors."""

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from train.config import load_config
from train.manifest import ImageRecord, Manifest, read_manifest, write_manifest
from train.models import build_models, load_text_encoders_for
from train.text_cache import (
    ShardWriter,
    TextCache,
    TextCacheError,
    caption_key,
    check_captions,
    encode_captions,
)

REPO = Path(__file__).resolve().parents[2]
LONG = " ".join(["a very long caption about many people in a sunny park"] * 6)


@pytest.fixture(scope="module")
def encoders(tiny_models_dir):
    cfg = load_config(REPO / "train" / "configs" / "tiny.yaml", [f"model.tiny_dir={tiny_models_dir}"])
    return load_text_encoders_for(cfg.model)


def test_cache_is_bf16_at_comfyui_length_and_matches_the_encoders(encoders, tmp_path):
    """Short captions are padded to t5_min_length only, long ones keep their tokens (up to t5_max_length); the
    cached values are the encoders' outputs rounded to bf16."""
    captions = ["a man", "two men", LONG]
    assert encode_captions(captions, encoders.encode, tmp_path, 16, 32, shard_size=2, progress=False) == 3
    cache = TextCache(tmp_path, 16, 32)
    assert cache.missing(captions) == []
    lengths = []
    for c in captions:
        txt, y = cache(c)
        ref_txt, ref_y = encoders.encode(c)
        assert txt.dtype == torch.float32 and txt.shape == ref_txt.shape
        torch.testing.assert_close(txt, ref_txt.bfloat16().float(), rtol=0, atol=0)
        torch.testing.assert_close(y, ref_y.bfloat16().float(), rtol=0, atol=0)
        lengths.append(txt.shape[1])
    tokens = [len(encoders.t5_tokenizer(c).input_ids) for c in captions]
    assert tokens[0] < 16 and tokens[1] < 16 and tokens[2] > 32
    assert lengths == [16, 16, 32]
    shards = sorted(tmp_path.glob("*.safetensors"))
    assert [p.name for p in shards] == ["shard-r00000-000000.safetensors", "shard-r00000-000001.safetensors"]
    with safe_open(str(shards[0]), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.bfloat16}
    with pytest.raises(TextCacheError, match="not in the text cache .*encode-text"):
        cache("never encoded")


def test_cache_built_with_other_lengths_is_refused(encoders, tmp_path):
    encode_captions(["a man in a crowd"], encoders.encode, tmp_path, 16, 32, progress=False)
    with pytest.raises(TextCacheError, match="T5 lengths '16-32'.*needs .*'32-32'"):
        TextCache(tmp_path, 32, 32)


def test_rerun_adds_only_missing_captions_in_new_shards(encoders, tmp_path):
    encode_captions(["a man in a crowd"], encoders.encode, tmp_path, 16, 32, progress=False)
    first = sorted(tmp_path.iterdir())
    stamp = first[0].stat().st_mtime_ns
    added = encode_captions(["a man in a crowd", "two people"], encoders.encode, tmp_path, 16, 32, progress=False)
    assert added == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "shard-r00000-000000.safetensors",
        "shard-r00000-000001.safetensors",
    ]
    assert first[0].stat().st_mtime_ns == stamp  # never rewritten
    assert ShardWriter(tmp_path, 0, "16-32").seq == 2 and ShardWriter(tmp_path, 1, "16-32").seq == 0


def test_two_processes_fill_one_cache(tiny_manifest, tiny_models_dir, tmp_path):
    """Two concurrent `encode-text` processes (RANK 0/1 of 2, as accelerate/torchrun set them) write disjoint
    shards under their own names; together they cover every caption once, with no temporary files left."""
    folder = tmp_path / "cache"
    captions = [f"caption number {i}" for i in range(6)]
    base = read_manifest(tiny_manifest)
    manifest = tmp_path / "manifest.jsonl"
    write_manifest(manifest, Manifest(base.galleries, tuple(replace(base.images[0], caption=c) for c in captions)))
    cmd = [
        sys.executable,
        "-m",
        "train",
        "encode-text",
        "--config",
        str(REPO / "train" / "configs" / "tiny.yaml"),
        "--shard-size",
        "2",
        f"data.manifest={manifest}",
        f"model.tiny_dir={tiny_models_dir}",
        f"model.text_cache={folder}",
    ]
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", WORLD_SIZE="2")
    procs = [
        subprocess.Popen(cmd, cwd=REPO, env=dict(env, RANK=str(r)), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for r in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]  # a loaded CI machine: imports alone can take minutes
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err.decode()[-3000:]
    assert b"rank 0/2: encoded 3 captions" in outs[0][0] and b"rank 1/2: encoded 3 captions" in outs[1][0]
    names = sorted(p.name for p in folder.iterdir())
    assert names == [f"shard-r0000{r}-00000{s}.safetensors" for r in (0, 1) for s in (0, 1)], names
    keys = []
    for shard in folder.iterdir():
        with safe_open(str(shard), "pt") as f:
            keys += [k[4:] for k in f.keys() if k.startswith("txt.")]
    assert sorted(keys) == sorted(caption_key(c) for c in captions)


def test_training_reads_the_cache_without_loading_encoders(tiny_config, tiny_manifest, encoders, tmp_path):
    folder = tmp_path / "cache"
    encode_captions(["two people at a party", "a man in a crowd"], encoders.encode, folder, 16, 32, progress=False)
    cfg = tiny_config(f"model.text_cache={folder}")
    models = build_models(cfg.model, need_recognizer=False)
    assert isinstance(models.text, TextCache)
    check_captions(read_manifest(tiny_manifest), cfg.data, models.text)
    cfg = tiny_config(f"model.text_cache={folder}", "data.caption_dropout=0.1")  # needs "" too
    with pytest.raises(TextCacheError, match="1 captions are not in the text cache"):
        check_captions(read_manifest(tiny_manifest), cfg.data, models.text)


def test_image_without_caption_is_an_error_unless_allowed(tiny_config):
    record = ImageRecord(Path("x.jpg"), "", ())
    manifest = Manifest({}, (record, ImageRecord(Path("y.jpg"), "a caption", ())))
    with pytest.raises(TextCacheError, match=r"1 of 2 manifest images have no caption .*allow_missing_captions"):
        check_captions(manifest, tiny_config().data, None)
    check_captions(manifest, tiny_config("data.allow_missing_captions=true").data, None)


def test_pipeline_pads_t5_like_the_trainer(tiny_models_dir, tmp_path, monkeypatch):
    """The standalone pipeline (``AnyPhotoPipeline.from_files``) and the trainer (``flux_dev.yaml``) give a caption
    the same T5 positions: ComfyUI's 256 for a short one, its tokens for a longer one, at most 512. The weight
    loaders are swapped for the tiny models (no encoder weights needed to count positions); tokenizers and
    lengths run the real code paths."""
    from anyphoto_core.app import pipeline as pipeline_module
    from anyphoto_core.app.models import text_encoders
    from anyphoto_core.app.models.discovery import ModelFiles
    from anyphoto_core.app.models.tiny import TINY_VAE_CONFIG
    from anyphoto_core.flux import load_flux

    tiny = Path(tiny_models_dir)
    vae = pipeline_module.load_flux_vae
    monkeypatch.setattr(text_encoders, "load_clip_text_model", lambda *a, **k: None)
    monkeypatch.setattr(text_encoders, "load_t5_encoder", lambda *a, **k: None)
    monkeypatch.setattr(pipeline_module, "load_flux", lambda *a, **k: load_flux(tiny / "flux.safetensors"))
    monkeypatch.setattr(
        pipeline_module, "load_flux_vae", lambda *a, **k: vae(tiny / "vae.safetensors", config=TINY_VAE_CONFIG)
    )
    tokenizers = tmp_path / "FLUX.1-dev"  # diffusers layout: tokenizer/ (CLIP), tokenizer_2/ (T5)
    tokenizers.mkdir()
    for name in ("tokenizer", "tokenizer_2"):
        (tokenizers / name).symlink_to(tiny / "tokenizer")
    files = {role: tmp_path / f"{role}.safetensors" for role in ("flux", "vae", "clip_l", "t5")}
    for path in files.values():
        path.touch()
    pipe = pipeline_module.AnyPhotoPipeline.from_files(ModelFiles(**files), [tokenizers], "cpu", torch.float32)
    overrides = [f"model.{role}={path}" for role, path in files.items()] + [f"model.tokenizers={tokenizers}"]
    trainer = load_text_encoders_for(load_config(REPO / "train" / "configs" / "flux_dev.yaml", overrides).model)

    longer, longest = " ".join(["many people in a park"] * 18), " ".join(["many people in a park"] * 40)
    tokens = len(trainer.t5_tokenizer(longer).input_ids)
    assert 256 < tokens < 512 and len(trainer.t5_tokenizer(longest).input_ids) > 512
    for caption, positions in (("a man", 256), (longer, tokens), (longest, 512)):
        assert pipe.text_encoders.t5_length(caption) == trainer.t5_length(caption) == positions, caption[:20]
