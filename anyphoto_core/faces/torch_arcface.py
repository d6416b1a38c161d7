"""Differentiable ArcFace for the trainer: torch alignment at 5 landmarks + the recognizer ONNX in PyTorch.

Image convention: RGB float tensors with values in [0, 1] (ComfyUI's IMAGE range; map a VAE's
[-1, 1] output with ``(x + 1) / 2``), NCHW. ``align_faces_torch`` reproduces
``insightface.utils.face_align.norm_crop`` (similarity to the ArcFace template, bilinear warp,
black outside the image) with ``affine_grid``/``grid_sample``; :class:`TorchArcFace` runs the same
ONNX weights as onnxruntime (converted by ``onnx2torch``) with the same input normalization, so
``TorchArcFace(align_faces_torch(img, lmk))`` matches the onnxruntime pipeline and is
differentiable with respect to ``img``.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..geometry import arcface_template
from .errors import FaceModelError
from .runtime import quiet_session_options


def similarity_umeyama(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """Batched least-squares similarity (Umeyama, closed form in 2-D) mapping ``src`` to ``dst``.

    ``src``, ``dst``: ``(B, N, 2)``. Returns ``(B, 3, 3)`` matrices ``[[a, -b, tx], [b, a, ty], [0, 0, 1]]``;
    the same fit as scikit-image's ``SimilarityTransform`` (and so insightface's ``estimate_norm``).
    """
    src_mean, dst_mean = src.mean(dim=1, keepdim=True), dst.mean(dim=1, keepdim=True)
    x, y = src - src_mean, dst - dst_mean
    denom = (x * x).sum(dim=(1, 2))
    a = (x * y).sum(dim=(1, 2)) / denom
    b = (x[..., 0] * y[..., 1] - x[..., 1] * y[..., 0]).sum(dim=1) / denom
    rot = torch.stack([torch.stack([a, -b], -1), torch.stack([b, a], -1)], dim=-2)  # (B, 2, 2)
    t = dst_mean.squeeze(1) - (rot @ src_mean.transpose(1, 2)).squeeze(-1)
    bottom = torch.tensor([0.0, 0.0, 1.0], dtype=src.dtype, device=src.device).expand(src.shape[0], 1, 3)
    return torch.cat([torch.cat([rot, t.unsqueeze(-1)], dim=-1), bottom], dim=1)


def _pixel_to_normalized(size_w: int, size_h: int, ref: torch.Tensor) -> torch.Tensor:
    """3x3 map from pixel coordinates (centres at integers) to grid_sample's [-1, 1] (align_corners=False)."""
    return torch.tensor(
        [[2.0 / size_w, 0.0, 1.0 / size_w - 1.0], [0.0, 2.0 / size_h, 1.0 / size_h - 1.0], [0.0, 0.0, 1.0]],
        dtype=ref.dtype,
        device=ref.device,
    )


def align_faces_torch(images: torch.Tensor, landmarks: torch.Tensor, size: int = 112) -> torch.Tensor:
    """ArcFace-align faces differentiably.

    images: ``(B, 3, H, W)`` float RGB in [0, 1]; landmarks: ``(B, 5, 2)`` pixels of ``images``.
    Returns ``(B, 3, size, size)`` in [0, 1], zeros (black) where the crop falls outside the image.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
    if landmarks.shape != (images.shape[0], 5, 2):
        raise ValueError(f"landmarks must be (B, 5, 2) with B={images.shape[0]}, got {tuple(landmarks.shape)}")
    work = torch.float64 if images.dtype == torch.float64 else torch.float32
    lmk = landmarks.to(device=images.device, dtype=work)
    template = torch.as_tensor(arcface_template(size), dtype=work, device=images.device).expand_as(lmk)
    crop_from_image = similarity_umeyama(lmk, template)  # photo px -> crop px
    h, w = images.shape[-2:]
    theta = (
        _pixel_to_normalized(w, h, lmk)
        @ torch.linalg.inv(crop_from_image)
        @ torch.linalg.inv(_pixel_to_normalized(size, size, lmk))
    )
    grid = F.affine_grid(theta[:, :2, :].to(images.dtype), [images.shape[0], 3, size, size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class TorchArcFace(nn.Module):
    """A frozen ArcFace-contract recognizer ONNX (``1x3x112x112 -> 1x512``) converted to PyTorch.

    ``forward(crops)``: ``(B, 3, 112, 112)`` RGB in [0, 1] (e.g. from :func:`align_faces_torch`) ->
    ``(B, 512)`` raw embeddings (L2-normalize them like the rest of the project). Input
    normalization ``(255 * x - mean) / std`` uses the mean/std insightface picks for the file
    (127.5/127.5, or 0/1 for graphs that normalize inside). The network stays in eval mode
    (BatchNorm uses its running statistics) and its weights never require gradients.
    """

    def __init__(self, onnx_path):
        super().__init__()
        import onnx
        from insightface.model_zoo import get_model
        from insightface.model_zoo.arcface_onnx import ArcFaceONNX
        from onnx2torch import convert

        path = Path(onnx_path)
        if not path.is_file():
            raise FaceModelError(f"recognizer model {path} does not exist")
        model = onnx.load(str(path))
        dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
        if len(dims) != 4 or dims[1:] != [3, 112, 112]:
            raise FaceModelError(
                f"{path.name} is not an ArcFace-contract recognizer: input shape {dims}, need Nx3x112x112"
            )
        # loaded only to read insightface's mean/std rule for this file
        arcface = get_model(str(path), providers=["CPUExecutionProvider"], sess_options=quiet_session_options())
        if not isinstance(arcface, ArcFaceONNX):
            raise FaceModelError(f"{path.name} is not routed as a recognizer by insightface")
        self.fixed_batch_1 = dims[0] == 1
        self.register_buffer("input_mean", torch.tensor(float(arcface.input_mean)), persistent=False)
        self.register_buffer("input_std", torch.tensor(float(arcface.input_std)), persistent=False)
        self.net = convert(model)
        self.net.requires_grad_(False)
        self.net.eval()

    def train(self, mode: bool = True) -> TorchArcFace:
        super().train(mode)
        self.net.eval()  # always frozen
        return self

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        if crops.ndim != 4 or tuple(crops.shape[1:]) != (3, 112, 112):
            raise ValueError(f"crops must be (B, 3, 112, 112), got {tuple(crops.shape)}")
        x = (crops * 255.0 - self.input_mean) / self.input_std
        if self.fixed_batch_1:  # graphs exported with batch 1 may reshape to (1, ...): run one by one
            return torch.cat([self.net(x[i : i + 1]) for i in range(x.shape[0])], dim=0)
        return self.net(x)

    def embed_aligned(self, images: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
        """``(B, 512)`` raw embeddings of the faces of ``images`` (B,3,H,W in [0,1]) at ``landmarks`` (B,5,2)."""
        return self(align_faces_torch(images, landmarks))
