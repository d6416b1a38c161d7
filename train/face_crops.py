"""Face loss at bounded memory: decode only the latent windows the aligned face crops need.

The face loss (eq. 24) needs, per face, a 112x112 ArcFace-aligned crop of the decoded one-step
estimate ``x0_hat``. Decoding the whole image with gradients peaks at 11.4 GiB at 1024^2 (FLUX VAE in bf16 and
IResNet-100, measured by benchmarks/train_memory.py; 1.1 GiB with the windows). Here each face decodes only a
latent *window*:

1. the aligned crop's footprint in the image (the four corners of the 112x112 crop mapped back by the
   inverse similarity, plus one pixel for bilinear sampling), as a box in latent cells (8 px);
2. grown by ``margin`` latent cells on every side (the decoder's convolutions see neighbours) and
   clipped to the latent;
3. decoded under ``torch.utils.checkpoint``: only the decoded window is kept for backward, the
   decoder's activations are recomputed one face at a time, so the peak is one window's decode.

The crop is then aligned from the decoded window with the landmarks shifted into it. Where the crop
leaves the image, the window reaches the image border, so the zero padding is the same as with a
full decode. What differs from a full decode: the decoder's GroupNorm statistics and mid-block
self-attention see only the window (the same approximation as tiled VAE decoding), and convolution
context beyond ``margin`` cells is zero padding. ``tests/train/test_face_crops.py`` states the
tolerance against the full-decode loss.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from anyphoto_core.faces import align_faces_torch
from anyphoto_core.faces.torch_arcface import similarity_umeyama
from anyphoto_core.geometry import arcface_template

#: Pixels per latent cell of the FLUX VAE.
LATENT_SCALE = 8
#: Default window growth in latent cells (64 px) on each side of the crop's footprint.
DEFAULT_MARGIN = 8

#: model-space latents ``(1, 16, h, w)`` -> images ``(1, 3, 8h, 8w)`` in about [-1, 1], differentiable.
DecodeFn = Callable[[Tensor], Tensor]


def crop_footprints(landmarks: Tensor, size: int = 112) -> Tensor:
    """Axis-aligned image-pixel boxes ``(F, 4)`` ``(x0, y0, x1, y1)`` covering every point the
    ``size`` x ``size`` ArcFace crop of each face samples (``landmarks`` ``(F, 5, 2)`` pixels)."""
    lmk = landmarks.detach().to(torch.float64).cpu()
    template = torch.as_tensor(arcface_template(size), dtype=torch.float64, device=lmk.device).expand_as(lmk)
    image_from_crop = torch.linalg.inv(similarity_umeyama(lmk, template))
    edge = torch.tensor([-0.5, size - 0.5], dtype=torch.float64, device=lmk.device)
    corners = torch.stack(torch.meshgrid(edge, edge, indexing="xy"), -1).reshape(4, 2)
    homogeneous = torch.cat([corners, torch.ones(4, 1, dtype=torch.float64, device=lmk.device)], 1)  # (4, 3)
    points = (image_from_crop @ homogeneous.T)[:, :2].transpose(1, 2)  # (F, 4, 2)
    return torch.cat([points.amin(1) - 1.0, points.amax(1) + 1.0], 1)


def latent_windows(landmarks: Tensor, latent_hw: tuple[int, int], margin: int = DEFAULT_MARGIN, size: int = 112):
    """Per face ``(top, left, bottom, right)`` latent cells (end exclusive) to decode; see module doc."""
    h, w = latent_hw
    out = []
    for x0, y0, x1, y1 in crop_footprints(landmarks, size).tolist():
        top = max(int(y0 // LATENT_SCALE) - margin, 0)
        left = max(int(x0 // LATENT_SCALE) - margin, 0)
        bottom = min(int(-(-y1 // LATENT_SCALE)) + margin, h)
        right = min(int(-(-x1 // LATENT_SCALE)) + margin, w)
        if bottom <= top or right <= left:  # the crop lies entirely outside the image: keep one cell
            top, left = min(max(top, 0), h - 1), min(max(left, 0), w - 1)
            bottom, right = top + 1, left + 1
        out.append((top, left, bottom, right))
    return out


def decode_face_crops(
    decode: DecodeFn,
    latent: Tensor,
    landmarks: Tensor,
    margin: int = DEFAULT_MARGIN,
    size: int = 112,
    recompute: bool = True,
) -> Tensor:
    """Aligned face crops ``(F, 3, size, size)`` in [0, 1] of ``decode(latent)`` at ``landmarks``.

    ``latent``: ``(1, 16, h, w)`` model-space latents (with grad); ``landmarks``: ``(F, 5, 2)``
    pixels of the decoded image. Each face decodes its :func:`latent_windows` window;
    ``recompute`` = decode under activation checkpointing (peak = one window's decode).
    """
    crops = []
    windows = latent_windows(landmarks, latent.shape[-2:], margin, size)
    for i, (top, left, bottom, right) in enumerate(windows):
        offset = torch.tensor([left, top], dtype=landmarks.dtype, device=landmarks.device) * LATENT_SCALE
        lmk = (landmarks[i : i + 1] - offset).detach()

        def face(window: Tensor, lmk=lmk) -> Tensor:
            image = ((decode(window).float() + 1) / 2).clamp(0, 1)
            return align_faces_torch(image, lmk.to(image), size)

        window = latent[:, :, top:bottom, left:right]
        crops.append(checkpoint(face, window, use_reentrant=False) if recompute else face(window))
    return torch.cat(crops)


def decode_face_crops_full(decode: DecodeFn, latent: Tensor, landmarks: Tensor, size: int = 112) -> Tensor:
    """The reference: decode the whole latent once and align every face from it (``(F, 3, size, size)``)."""
    image = ((decode(latent).float() + 1) / 2).clamp(0, 1)
    return align_faces_torch(image.expand(len(landmarks), -1, -1, -1), landmarks.to(image), size)
