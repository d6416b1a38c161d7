"""Differentiable ArcFace: torch alignment == norm_crop, PyTorch recognizer == onnxruntime, gradients flow."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fixtures.face_models import SCENE_FACES, real_recognizer_path, render_scene

from anyphoto_core.faces import TorchArcFace, align_faces_torch, arcface_crop, load_photo, similarity_umeyama
from anyphoto_core.geometry import ARCFACE_TEMPLATE_112, estimate_similarity


def _to_tensor(image):
    return torch.from_numpy(image).permute(2, 0, 1)[None].double() / 255.0


def test_umeyama_matches_skimage():
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 500, (4, 5, 2))
    dst = np.stack([ARCFACE_TEMPLATE_112 + rng.normal(0, 2, (5, 2)) for _ in range(4)])
    ours = similarity_umeyama(torch.from_numpy(src), torch.from_numpy(dst)).numpy()
    for k in range(4):
        assert np.allclose(ours[k], estimate_similarity(src[k], dst[k]), atol=1e-9)


def test_torch_alignment_matches_norm_crop():
    scene = render_scene()
    lmk = np.stack([f.landmarks for f in SCENE_FACES])
    crops = align_faces_torch(_to_tensor(scene).expand(3, -1, -1, -1), torch.from_numpy(lmk))
    for k in range(3):
        ref = arcface_crop(scene, lmk[k]).astype(np.float64)
        ours = crops[k].permute(1, 2, 0).numpy() * 255.0
        assert np.abs(ours - ref).max() < 1.0  # cv2 rounds to uint8 and uses fixed-point weights


@pytest.fixture(scope="module")
def tiny_recognizer_path(face_pack_root):
    return face_pack_root / "models" / "antelopev2" / "tiny_test_recognizer.onnx"


def test_torch_recognizer_equals_onnxruntime(fixture_analyzer, tiny_recognizer_path):
    net = TorchArcFace(tiny_recognizer_path)
    scene = render_scene()
    lmk = np.stack([f.landmarks for f in SCENE_FACES])
    crops_np = [arcface_crop(scene, m) for m in lmk]
    expected = np.stack([fixture_analyzer.recognizer.embed(c) for c in crops_np])
    same_input = net(torch.from_numpy(np.stack(crops_np)).permute(0, 3, 1, 2).float() / 255.0).numpy()
    assert np.allclose(same_input, expected, atol=1e-4 * np.abs(expected).max())
    aligned = net.embed_aligned(_to_tensor(scene).float().expand(3, -1, -1, -1), torch.from_numpy(lmk)).numpy()
    cos = (aligned * expected).sum(1) / np.linalg.norm(aligned, axis=1) / np.linalg.norm(expected, axis=1)
    assert cos.min() > 0.999


def test_gradients_reach_the_image_through_alignment(tiny_recognizer_path):
    net = TorchArcFace(tiny_recognizer_path)
    net.train()
    assert not net.net.training and not any(p.requires_grad for p in net.parameters())
    image = _to_tensor(render_scene()).float().requires_grad_(True)
    face = SCENE_FACES[2]  # C, centred at (560, 520), 112 px crop
    emb = net.embed_aligned(image, torch.from_numpy(face.landmarks)[None])
    emb.norm().backward()
    grad = image.grad[0].abs().sum(0)
    assert grad[470:570, 510:610].sum() > 0
    assert grad[:300, :300].sum() == 0  # far from the face nothing is sampled


def test_real_recognizer_converts_and_matches(real_analyzer, group_photo_path):
    net = TorchArcFace(real_recognizer_path())
    photo = load_photo(group_photo_path)
    dets = real_analyzer.detector.detect(photo)[:3]
    lmk = torch.from_numpy(np.stack([d.landmarks for d in dets]))
    image = _to_tensor(photo).float().expand(len(dets), -1, -1, -1).clone().requires_grad_(True)
    emb = net.embed_aligned(image, lmk)
    expected = np.stack([real_analyzer.recognizer.embed(arcface_crop(photo, d.landmarks)) for d in dets])
    got = emb.detach().numpy()
    cos = (got * expected).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(expected, axis=1)
    assert cos.min() > 0.999
    emb.sum().backward()
    assert image.grad.abs().sum() > 0
