"""MiniWorld: the world generator (deterministic, exact landmarks, held-out split, styles that change
colours), a smoke run of every world script and of the trainer on a tiny world, and the shipped models."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from train.miniworld.people import Appearance, draw_person, random_identity
from train.miniworld.scenes import STYLES, Spot, apply_style, render_scene
from train.miniworld.world import WorldSpec, eval_case, people, reference_photo, reference_style, training_scene

TINY = WorldSpec(train_people=4, heldout_people=3, references=2, scenes=6)


def _person(seed=0, roll=0.0, yaw=0.0, expression=0):
    ident = random_identity(np.random.default_rng(seed))
    return ident, Appearance(roll, yaw, expression, 0.0, 0.0, (90, 90, 200))


def test_world_is_deterministic_and_splits_people():
    cast = people(TINY)
    assert cast == people(TINY)
    assert [p.split for p in cast] == ["train"] * 4 + ["heldout"] * 3
    a, who_a = training_scene(TINY, 3, cast[:4])
    b, who_b = training_scene(TINY, 3, cast[:4])
    assert np.array_equal(a.image, b.image) and who_a == who_b and all(p.split == "train" for p in who_a)
    heldout = cast[4:]
    case = eval_case(TINY, 2, 0, heldout)
    assert all(p.split == "heldout" for p in case.people)
    # every reference of a case is in a style other than the target's
    assert all(reference_style(p, k) != case.target.style for p, k in zip(case.people, case.references, strict=True))


@pytest.mark.parametrize("roll", [-15.0, 0.0, 15.0])
def test_landmarks_are_where_the_face_parts_are_drawn(roll):
    """Independent check: at the eye landmarks the pupils are drawn (near black), at the mouth corners
    the lips (red), in the final scene after scaling, rotation and downsampling."""
    ident, look = _person(roll=roll)
    scene = render_scene([(ident, look)], [Spot(64.0, 60.0, 96.0)], "photo", 128, np.random.default_rng(0))
    img = scene.image.astype(int)
    lmk = scene.landmarks[0]
    for x, y in lmk[:2]:
        patch = img[round(y) - 1 : round(y) + 2, round(x) - 1 : round(x) + 2]
        assert patch.sum(axis=2).min() < 150, f"no pupil at eye landmark {(x, y)}"
    for x, y in lmk[3:]:
        r, g, _ = img[round(y), round(x)]
        assert r - g > 40, f"no lip at mouth corner {(x, y)}: {img[round(y), round(x)]}"
    # the sprite's own landmarks agree with its drawing too
    sprite, sprite_lmk = draw_person(ident, look)
    px = np.asarray(sprite)[round(sprite_lmk[0, 1]), round(sprite_lmk[0, 0])]
    assert px[:3].sum() < 60


def test_styles_change_colours_but_not_geometry():
    ident, look = _person(seed=3)
    photo = render_scene([(ident, look)], [Spot(32.0, 30.0, 36.0)], "photo", 64, np.random.default_rng(1))
    for style in STYLES[1:]:
        styled = apply_style(photo.image, style, np.random.default_rng(1))
        assert np.abs(styled.astype(int) - photo.image.astype(int)).mean() > 8, style
    sketch = apply_style(photo.image, "sketch", np.random.default_rng(1))
    assert np.array_equal(sketch[..., 0], sketch[..., 1]) and np.array_equal(sketch[..., 1], sketch[..., 2])


def test_reference_bank_differs_in_appearance():
    person = people(TINY)[5]
    refs = [reference_photo(TINY, person, k) for k in range(TINY.references)]
    assert refs[0].style != refs[1].style
    assert np.abs(refs[0].landmarks - refs[1].landmarks).max() > 1.0


@pytest.fixture(scope="module")
def smoke_models(tmp_path_factory):
    """A tiny world and 2 steps of every world script, assembled as a MiniWorld model folder."""
    from train.miniworld.base import train_base
    from train.miniworld.generate import write_training_manifest, write_world
    from train.miniworld.recognizer import train_recognizer
    from train.miniworld.vae import train_vae

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("miniworld")
    world = root / "world"
    write_world(world, TINY)
    vae = train_vae(world, root / "vae", steps=2, batch=2)
    rec = train_recognizer(world, root / "rec", steps=2, batch=4, copies=1)
    write_training_manifest(world, rec)
    base = train_base(world, vae, root / "base", steps=2, batch=2)
    models = root / "models"
    models.mkdir()
    for src in (vae, vae.with_suffix(".json"), base, rec):
        (models / src.name).write_bytes(src.read_bytes())
    return world, models


def test_world_scripts_resume_and_feed_the_normal_trainer(smoke_models, tmp_path):
    from anyphoto_core.app.models.miniworld import load_miniworld_vae
    from anyphoto_core.faces import TorchArcFace, load_arcface_recognizer
    from anyphoto_core.flux import load_flux
    from train.config import load_config
    from train.manifest import read_manifest
    from train.trainer import Trainer

    world, models = smoke_models
    manifest = read_manifest(world / "manifest.jsonl")
    assert all(name.startswith("p000") and int(name[1:]) < TINY.train_people for name in manifest.galleries)
    # the models load through the project's own loaders
    vae = load_miniworld_vae(models)
    assert vae.encode(torch.zeros(1, 3, 64, 64)).shape == (1, 16, 8, 8)
    assert load_flux(models / "flux.safetensors", dtype=torch.float32).params.hidden_size == 96
    crop = np.random.default_rng(0).integers(0, 255, (112, 112, 3), dtype=np.uint8)
    onnx = load_arcface_recognizer(models / "recognizer.onnx", providers=["CPUExecutionProvider"]).embed(crop)
    torch_out = TorchArcFace(models / "recognizer.onnx")(torch.from_numpy(crop).permute(2, 0, 1)[None] / 255.0)
    assert np.allclose(onnx, torch_out[0].detach().numpy(), atol=1e-4)
    cfg = load_config(
        "train/configs/miniworld.yaml",
        [
            f"data.manifest={world / 'manifest.jsonl'}",
            f"model.world_dir={models}",
            f"model.recognizer={models / 'recognizer.onnx'}",
            f"run.output={tmp_path / 'run'}",
            "run.steps=2",
            "run.checkpoint_every=0",
            "model.isolate=false",
            "model.modulation=false",
        ],
    )
    trainer = Trainer(cfg)
    history = trainer.fit()
    assert len(history) == 2 and all(np.isfinite(h["loss"]) for h in history)
    # no-modulation ablation: the projector is frozen at its zero output, so delta c stays exactly 0
    assert torch.count_nonzero(trainer.adapter.modulation_offsets(torch.randn(2, 512))) == 0


def test_world_script_resume_is_exact(smoke_models, tmp_path):
    """1 step, stop, resume to 2 steps == 2 steps in one go (weights of the checkpoint, bit for bit)."""
    from safetensors.torch import load_file

    from train.miniworld.vae import train_vae

    world, _ = smoke_models
    train_vae(world, tmp_path / "split", steps=1, batch=2)
    assert json.loads((tmp_path / "split" / "checkpoint" / "state.json").read_text())["step"] == 1
    train_vae(world, tmp_path / "split", steps=2, batch=2)
    train_vae(world, tmp_path / "whole", steps=2, batch=2)
    split = load_file(tmp_path / "split" / "checkpoint" / "model.safetensors")
    whole = load_file(tmp_path / "whole" / "checkpoint" / "model.safetensors")
    assert split.keys() == whole.keys() and all(torch.equal(split[k], whole[k]) for k in split)


def test_train_base_width_and_latent_cache(smoke_models, tmp_path):
    """A wider/shallower base from the scene-latent cache alone (no world, no VAE) equals the run that wrote it,
    and the cache holds the world's latents (float16)."""
    from safetensors.torch import load_file

    from anyphoto_core.flux import load_flux
    from train.miniworld.base import base_params, encode_scenes, scene_latents, train_base

    world, models = smoke_models
    cache = tmp_path / "latents.safetensors"
    params = base_params(hidden=64, depth=1, single_depth=3)
    kw = {"steps": 2, "batch": 2, "params": params, "latents": cache}
    first = train_base(world, models / "vae.safetensors", tmp_path / "a", **kw)
    missing = tmp_path / "no-such"
    again = train_base(missing, missing / "vae.safetensors", tmp_path / "b", **kw)
    base = load_flux(first, dtype=torch.float32).params
    assert (base.hidden_size, base.num_heads, base.depth, base.depth_single_blocks) == (64, 2, 1, 3)
    a, b = load_file(first), load_file(again)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    latents, captions = encode_scenes(world, models / "vae.safetensors")
    cached, cached_captions = scene_latents(missing, missing, cache)
    assert cached_captions == captions and cached.shape == latents.shape
    assert torch.equal(cached, latents.half().float())
    assert json.loads((tmp_path / "a" / "flux.json").read_text())["hidden"] == 64
    with pytest.raises(ValueError, match="multiple of 32"):
        base_params(hidden=48)


def test_ship_records_the_base_shape_in_its_command(smoke_models, tmp_path):
    """``ship`` writes the width, depth, batch and device a base was trained with into its provenance command,
    so that the command rebuilds that base."""
    from train.miniworld.base import base_params, train_base
    from train.miniworld.ship import ship_world_models

    world, models = smoke_models
    runs = tmp_path / "runs"
    train_base(world, models / "vae.safetensors", runs / "base", steps=1, batch=2, params=base_params(64, 1, 3))
    for sub, names in (("vae", ("vae.safetensors", "vae.json")), ("recognizer", ("recognizer.onnx",))):
        (runs / sub).mkdir(parents=True)
        for name in names:
            (runs / sub / name).write_bytes((models / name).read_bytes())
    ship_world_models(runs, tmp_path / "shipped")
    command = json.loads((tmp_path / "shipped" / "provenance.json").read_text())["flux.safetensors"]["command"]
    assert command.endswith("--hidden 64 --depth 1 --single-depth 3 --batch 2 --device cpu")


def _eval_shipped_adapter(id_guidance: float = 1.0) -> tuple[dict, dict]:
    """The shipped adapter on one held-out 2-person case, 2 steps: rows by config, and the case's pictures."""
    from anyphoto_core.app.models.miniworld import MINIWORLD_DIR
    from train.miniworld.evaluate import EvalConfig, evaluate

    torch.set_num_threads(1)
    figure: list = []
    rows = evaluate(
        None,
        cases_per_count=1,
        configs=[EvalConfig("adapter", MINIWORLD_DIR / "adapter.safetensors")],
        steps=2,
        counts=(2,),
        figure=figure,
        figure_cases=1,
        id_guidance=id_guidance,
    )
    return {r["config"]: r for r in rows}, figure[0][0]


def test_shipped_models_load_generate_and_evaluate():
    """The shipped set: the evaluation runs on one held-out 2-person case; the recognizer finds every
    person in the ground-truth scene and in the pasted references (its ceiling), with no swap."""
    by, _ = _eval_shipped_adapter()
    rows = list(by.values())
    assert set(by) == {"ground_truth", "adapter", "paste"}
    assert by["ground_truth"]["identity_accuracy"] == 1.0 and by["ground_truth"]["swap_rate"] == 0.0
    assert by["ground_truth"]["sim_gt"] > 0.999
    assert by["paste"]["identity_accuracy"] == 1.0
    assert all(r["faces"] == 2 and r["cases"] == 1 for r in rows)


def test_eval_identity_guidance_reaches_the_adapter_rows_only():
    """``eval --id-guidance``: the adapter's picture changes with the scale, the rows record it, and the
    rows without identities (ground truth, paste) are untouched."""
    rows1, pics1 = _eval_shipped_adapter(1.0)
    rows4, pics4 = _eval_shipped_adapter(4.0)
    assert rows4["adapter"]["id_guidance"] == 4.0 and rows1["adapter"]["id_guidance"] == 1.0
    assert rows4["ground_truth"]["id_guidance"] == 1.0 and rows4["paste"]["id_guidance"] == 1.0
    assert np.abs(pics4["adapter"].astype(int) - pics1["adapter"].astype(int)).mean() > 1.0
    assert np.array_equal(pics4["paste"], pics1["paste"])


def test_generate_demo_uses_the_miniworld_set(tmp_path):
    from PIL import Image

    from anyphoto_core.app.cli import main

    out = tmp_path / "demo.png"
    assert main(["generate", "--out", str(out), "--steps", "2"]) == 0
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["models"]["builtin"] == "miniworld" and report["size"] == [128, 128] and len(report["people"]) == 2
    assert all(p["tokens"] > 0 for p in report["people"])
    with Image.open(tmp_path / "demo_preview.png") as prev:
        assert prev.height >= 256


def _diagnose_overrides(world, models, tmp_path):
    return [
        f"data.manifest={world / 'manifest.jsonl'}",
        f"model.recognizer={models / 'recognizer.onnx'}",
        f"run.output={tmp_path / 'run'}",
    ]


def test_canvas_locality_is_zero_for_a_local_encoder(smoke_models, tmp_path):
    """With a purely local encoder (8x8 average pool), a face cell's latent depends only on its pixels, so the
    target masked to the face has exactly the target's latent there; the world VAE does not (it has context)."""
    import torch.nn.functional as F

    from train.miniworld.diagnose import locality_errors, miniworld_trainer

    world, models = smoke_models
    trainer = miniworld_trainer(models, _diagnose_overrides(world, models, tmp_path))
    vae_rows = locality_errors(trainer, samples=3)
    assert vae_rows["faces"] > 0 and vae_rows["masked_target_vs_target"] > 0.01
    trainer.models.vae.encode = lambda x: torch.cat([F.avg_pool2d(x, 8)] * 6, dim=1)[:, :16]
    local = locality_errors(trainer, samples=3)
    assert local["faces"] == vae_rows["faces"]
    assert local["masked_target_vs_target"] < 0.02
    assert 0 < local["canvas_vs_target"] < vae_rows["canvas_vs_target"] + 1.0


def test_diagnose_ceiling_and_face_token_gap_run_on_a_tiny_world(smoke_models, tmp_path):
    from train.miniworld.diagnose import face_token_gap, vae_ceiling

    world, models = smoke_models
    ceiling = vae_ceiling(models, cases=1, counts=(2,), spec=TINY)
    assert ceiling["faces"] == 2
    assert 0 <= ceiling["identity_accuracy_vae_round_trip"] <= 1 and 0 <= ceiling["identity_accuracy_true_scene"] <= 1
    gap = face_token_gap(models, None, samples=2, times=(0.5,), overrides=_diagnose_overrides(world, models, tmp_path))
    row = gap["rows"][0]
    assert np.isfinite(row["identities"]) and np.isfinite(row["dropped"])
    assert (
        row["relative_gain"] == round(1 - row["identities"] / row["dropped"], 4)
        or abs(row["relative_gain"] - (1 - row["identities"] / row["dropped"])) < 1e-3
    )


def test_one_sample_fit_lowers_that_samples_face_token_loss(smoke_models, tmp_path):
    """The identity path can carry a target: a few steps on one sample lower its face-token loss with identities."""
    from train.miniworld.diagnose import one_sample_fit

    world, models = smoke_models
    fit = one_sample_fit(models, steps=8, position=0, overrides=_diagnose_overrides(world, models, tmp_path))
    assert fit["face_cells"] > 0 and np.isfinite(fit["base_no_tokens"])
    assert fit["after"]["identities"] < fit["before"]["identities"]


def test_covered_cells_and_locality_losses_against_a_direct_computation():
    """The ``local`` term is the squared latent error at fully covered cells only, averaged over those cells'
    latent values; ``keep`` is the plain scene MSE. Checked against a loop over cells."""
    from train.miniworld.locality import covered_cells, locality_losses

    mask = np.zeros((32, 32), bool)
    mask[0:16, 0:16] = True  # cell (0, 0) fully covered
    mask[16:32, 0:13] = True  # cell (1, 0) 81 % covered: below the 0.9 threshold
    mask[0:15, 16:32] = True  # cell (0, 1) 94 % covered
    assert covered_cells(mask).tolist() == [[True, True], [False, False]]

    gen = torch.Generator().manual_seed(0)
    student = torch.nn.Conv2d(3, 4, 8, stride=8)
    teacher = torch.nn.Conv2d(3, 4, 8, stride=8)
    scenes, canvases = torch.randn(2, 3, 32, 32, generator=gen), torch.randn(3, 3, 32, 32, generator=gen)
    owner = [0, 1, 1]
    cells = torch.zeros(3, 1, 4, 4)
    cells[0, :, :2, :2] = 1  # canvas 0: one 16-px cell = 2 x 2 latents
    cells[2, :, 2:, 2:] = 1
    terms = locality_losses(student, teacher, scenes, canvases, owner, cells)
    with torch.no_grad():
        target, pred = teacher(scenes), student(canvases)
        errs = [
            (pred[c, :, y, x] - target[owner[c], :, y, x]) ** 2
            for c in range(3)
            for y in range(4)
            for x in range(4)
            if cells[c, 0, y, x]
        ]
        local = torch.cat(errs).mean()
        keep = ((student(scenes) - target) ** 2).mean()
    assert torch.allclose(terms["local"], local) and torch.allclose(terms["keep"], keep)


def test_localize_vae_freezes_the_decoder_and_keeps_the_latent_constants(smoke_models, tmp_path):
    """Only the encoder moves; the decoder and the latent shift/scale are the init's, so a base trained on the
    init's latents still decodes; the local term falls on the batch it trains on."""
    from safetensors.torch import load_file

    from train.miniworld.locality import localize_vae

    world, models = smoke_models
    out = localize_vae(world / "manifest.jsonl", models / "vae.safetensors", tmp_path / "local", steps=3, lr=5e-3)
    before, after = load_file(models / "vae.safetensors"), load_file(out)
    assert before.keys() == after.keys()
    decoder = [k for k in before if not k.startswith("encoder.")]
    assert decoder and all(torch.equal(before[k], after[k]) for k in decoder)
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("encoder."))
    config = json.loads(out.with_suffix(".json").read_text())["config"]
    assert config == json.loads((models / "vae.json").read_text())["config"]
    from diffusers import AutoencoderKL

    from train.config import DataConfig
    from train.dataset import SampleBuilder
    from train.manifest import read_manifest
    from train.miniworld.locality import local_batch, locality_losses
    from train.miniworld.vae import MINIWORLD_VAE_CONFIG

    def encoder(state):
        vae = AutoencoderKL(**MINIWORLD_VAE_CONFIG)
        vae.load_state_dict(state)
        return lambda x: vae.encode(x).latent_dist.mean

    data = DataConfig(manifest=str(world / "manifest.jsonl"), resolution=TINY.size, crop_size=112)
    builder = SampleBuilder(read_manifest(world / "manifest.jsonl"), data)
    batch = local_batch(builder, range(len(builder)))
    with torch.no_grad():
        old = locality_losses(encoder(before), encoder(before), *batch)
        new = locality_losses(encoder(after), encoder(before), *batch)
    assert old["keep"] == 0 and new["local"] < old["local"]


def test_denoised_identity_accuracy_at_t0_is_the_vae_ceiling(smoke_models, tmp_path):
    """At t = 0 the one-step prediction is the encoded ground truth itself, so every row scores the VAE round
    trip: the same accuracy as ``vae_ceiling`` on the same cases, whatever the adapter."""
    from anyphoto_core.adapter import AdapterConfig, AnyPhotoAdapter
    from anyphoto_core.flux import load_flux
    from train.miniworld.diagnose import denoised_identity_accuracy, vae_ceiling

    world, models = smoke_models
    flux = load_flux(models / "flux.safetensors", dtype=torch.float32)
    adapter = tmp_path / "adapter.safetensors"
    AnyPhotoAdapter(AdapterConfig.for_flux(flux.params, rank=2, alpha=2.0, projector_hidden=8)).save(adapter)
    rows = denoised_identity_accuracy(models, adapter, cases=2, counts=(2,), times=(0.0, 1.0), spec=TINY)
    ceiling = vae_ceiling(models, cases=2, counts=(2,), spec=TINY)["identity_accuracy_vae_round_trip"]
    assert {(r["t"], r["config"]) for r in rows} == {(t, c) for t in (0.0, 1.0) for c in ("adapter", "dropped", "base")}
    assert all(r["faces"] == 4 for r in rows)
    assert all(r["identity_accuracy"] == ceiling for r in rows if r["t"] == 0.0)
