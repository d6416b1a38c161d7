"""The MiniWorld face recognizer with the ArcFace contract: aligned 112x112 RGB -> 512 (raw; the project
L2-normalises), exported to ONNX so that the project's loaders use it unchanged (insightface
``ArcFaceONNX`` + onnxruntime for inference, onnx2torch for the face loss).

Input normalisation follows insightface's rule for graphs without a leading Sub/Mul:
``(pixel - 127.5) / 127.5``. The network averages the crop down 4x (world faces are 16-40 px, so a
112 crop holds no more detail), then a small CNN keeps the 7x7 layout (where glasses, beard and
hair are) into a linear 512-d embedding. Trained with a CosFace margin softmax on the *training*
people's aligned faces from the world's scenes and reference photos (all styles), with landmark
jitter, blur and contrast augmentation (generated faces are imperfect).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter
from torch import nn
from tqdm.auto import tqdm

from .checkpoints import train_loop
from .generate import read_world
from .vae import cosine_lr

POOL = 4
COSFACE_SCALE = 16.0
COSFACE_MARGIN = 0.25


class WorldRecognizer(nn.Module):
    """``(B, 3, 112, 112)`` normalised crops -> ``(B, 512)`` raw embeddings."""

    def __init__(self):
        super().__init__()
        self.pool = nn.AvgPool2d(POOL)

        def block(cin, cout, stride):
            return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

        self.body = nn.Sequential(
            *block(3, 32, 1), *block(32, 64, 2), *block(64, 64, 1), *block(64, 96, 2), *block(96, 64, 1)
        )
        self.embed = nn.Linear(64 * 7 * 7, 512)

    def features(self, pooled: torch.Tensor) -> torch.Tensor:
        """Embeddings of already pooled ``(B, 3, 28, 28)`` crops (training works on pooled crops)."""
        return self.embed(self.body(pooled).flatten(1))

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return self.features(self.pool(crops))


def _aligned_faces(folder: Path, split: str) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """Every ``split`` face of the world: source images, landmarks and identity names."""
    from anyphoto_core.faces import load_photo

    _, records = read_world(folder)
    images, landmarks, names = [], [], []
    for r in records:
        if r["kind"] == "reference" and r["split"] == split:
            images.append(load_photo(Path(folder) / r["image"]))
            landmarks.append(np.asarray(r["landmarks"]))
            names.append(r["identity"])
        elif r["kind"] == "scene" and split == "train":
            img = load_photo(Path(folder) / r["image"])
            for f in r["faces"]:
                images.append(img)
                landmarks.append(np.asarray(f["landmarks"]))
                names.append(f["identity"])
    return images, landmarks, names


def augmented_crop(image: np.ndarray, lmk: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Aligned 112 crop with landmark jitter (2 % of the eye-mouth distance), random blur and contrast."""
    from anyphoto_core.faces import arcface_crop

    scale = np.linalg.norm(lmk[3:].mean(0) - lmk[:2].mean(0))
    crop = arcface_crop(image, lmk + rng.normal(0, 0.06 * scale, lmk.shape))
    if rng.random() < 0.5:
        crop = np.asarray(Image.fromarray(crop).filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 3.0)))))
    mean = crop.mean()
    return np.clip((crop - mean) * rng.uniform(0.7, 1.3) + mean + rng.normal(0, 10), 0, 255).astype(np.uint8)


def to_input(crops: np.ndarray) -> torch.Tensor:
    """``(B, 112, 112, 3)`` uint8 RGB -> normalised ``(B, 3, 112, 112)`` float (insightface's rule)."""
    return (torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float() - 127.5) / 127.5


def pooled_bank(folder: Path, copies: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """``copies`` augmented crops of every training face, pooled to 28x28: ``(N, 3, 28, 28)``, labels."""
    images, landmarks, names = _aligned_faces(folder, "train")
    classes = sorted(set(names))
    index = {n: k for k, n in enumerate(classes)}
    rng = np.random.default_rng([seed, 7])
    pooled, labels = [], []
    for img, lmk, name in tqdm(list(zip(images, landmarks, names, strict=True)), desc="recognizer crops"):
        crops = np.stack([augmented_crop(img, lmk, rng) for _ in range(copies)])
        pooled.append(F.avg_pool2d(to_input(crops), POOL).half())
        labels += [index[name]] * copies
    return torch.cat(pooled), torch.tensor(labels), classes


def cosface_loss(emb: torch.Tensor, centres: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    cos = F.normalize(emb) @ F.normalize(centres).T
    margin = F.one_hot(labels, cos.shape[1]) * COSFACE_MARGIN
    return F.cross_entropy(COSFACE_SCALE * (cos - margin), labels)


def train_recognizer(
    world: Path, out: Path, steps: int | None = None, seed: int = 0, batch: int = 64, lr: float = 2e-3, copies: int = 3
) -> Path:
    """Train (resumes from ``out/checkpoint``) and export ``out/recognizer.onnx``."""
    steps = steps or 1500
    torch.manual_seed(seed)
    data, labels, classes = pooled_bank(world, copies, seed)
    model = WorldRecognizer()
    head = nn.Module()
    head.centres = nn.Parameter(torch.randn(len(classes), 512) * 0.01)
    both = nn.ModuleDict({"model": model, "head": head})
    optimizer = torch.optim.AdamW(both.parameters(), lr=lr, weight_decay=5e-4)

    def step_fn(step: int) -> dict[str, float]:
        pick = torch.from_numpy(np.random.default_rng([seed, step]).choice(len(data), batch, replace=False))
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, steps, lr)
        model.train()
        loss = cosface_loss(model.features(data[pick].float()), head.centres, labels[pick])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"loss": float(loss)}

    seconds = train_loop(out, both, optimizer, steps, step_fn, "recognizer")
    path = export_onnx(model, Path(out) / "recognizer.onnx")
    (Path(out) / "recognizer.json").write_text(
        json.dumps({"steps": steps, "seed": seed, "seconds": seconds, "classes": len(classes)})
    )
    return path


def fused(model: WorldRecognizer) -> nn.Module:
    """Eval copy with every BatchNorm folded into its convolution (plain Conv + bias in the ONNX graph)."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    model.eval()
    layers, mods = [], list(model.body)
    for k, m in enumerate(mods):
        if isinstance(m, nn.Conv2d):
            layers.append(fuse_conv_bn_eval(m, mods[k + 1]))
        elif isinstance(m, nn.ReLU):
            layers.append(m)
    return nn.Sequential(model.pool, *layers, nn.Flatten(1), model.embed).eval()


def export_onnx(model: WorldRecognizer, path: Path) -> Path:
    """ONNX with a dynamic batch axis (opset 17), BatchNorm folded."""
    tmp = path.with_suffix(".tmp.onnx")
    torch.onnx.export(
        fused(model),
        (torch.zeros(1, 3, 112, 112),),
        str(tmp),
        input_names=["input"],
        output_names=["embedding"],
        dynamic_axes={"input": {0: "batch"}, "embedding": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    tmp.replace(path)
    return path
