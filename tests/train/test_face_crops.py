"""Face loss from decoded latent windows (train/face_crops.py) against the full-image decode."""

import pytest
import torch
import torch.nn.functional as F

from train.face_crops import decode_face_crops, decode_face_crops_full, latent_windows
from train.losses import face_similarity_loss
from train.models import decode_with_grad

# Three faces on a 256 px image (32 x 32 latent cells): inside, near the bottom-right corner, cut by the top-left.
LANDMARKS = torch.tensor(
    [
        [[100.0, 100], [130, 101], [115, 118], [103, 133], [127, 134]],
        [[200, 205], [226, 200], [214, 220], [203, 234], [228, 230]],
        [[10, 8], [40, 10], [25, 28], [13, 43], [37, 43]],
    ]
)


def local_decode(latent: torch.Tensor) -> torch.Tensor:
    """A decoder whose every output pixel depends on its own latent cell only (8x nearest upsampling of a
    per-cell map): decoding a window must then give exactly the full decode's pixels."""
    rgb = torch.tanh(latent[:, :3] + 0.5 * latent[:, 3:6] * latent[:, 6:9])
    return F.interpolate(rgb, scale_factor=8, mode="nearest")


def test_windows_cover_what_the_crops_sample():
    """With a per-pixel decoder and no margin, window crops equal full-decode crops (geometry, offsets and
    the image border are right) and are smaller than the image."""
    latent = torch.randn(1, 16, 32, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    full = decode_face_crops_full(local_decode, latent, LANDMARKS.double())
    crops = decode_face_crops(local_decode, latent, LANDMARKS.double(), margin=0)
    # float32 sampling grids of different image sizes round differently: 1e-4; a 1-pixel shift costs ~0.1
    torch.testing.assert_close(crops, full, rtol=0, atol=1e-4)
    windows = latent_windows(LANDMARKS, (32, 32), margin=0)
    assert all((b - t) * (r - left) < 0.5 * 32 * 32 for t, left, b, r in windows), windows
    assert windows[2][:2] == (0, 0)  # the cut face's window reaches the image border


def test_windows_grow_by_the_margin_and_stay_inside():
    small, grown = latent_windows(LANDMARKS, (32, 32), 0), latent_windows(LANDMARKS, (32, 32), 3)
    for (t0, l0, b0, r0), (t1, l1, b1, r1) in zip(small, grown, strict=True):
        assert (t1, l1) == (max(t0 - 3, 0), max(l0 - 3, 0)) and (b1, r1) == (min(b0 + 3, 32), min(r0 + 3, 32))


@pytest.mark.parametrize("recompute", [True, False])
def test_crop_loss_matches_full_decode_on_tiny_vae(frozen_models, recompute):
    """Tiny VAE (GroupNorm, mid-block attention) + tiny recognizer, margin 8 latent cells: the face loss from
    windows is within 0.02 of the full-decode loss, and its gradient w.r.t. the latent points the same way
    (cosine > 0.9). Window statistics (GroupNorm, attention) are the only difference; see the module doc."""
    vae, rec = frozen_models.vae, frozen_models.recognizer

    def loss_and_grad(crop_fn, **kw):
        latent = (torch.randn(1, 16, 32, 32, generator=torch.Generator().manual_seed(1)) * 0.8).requires_grad_()
        crops = crop_fn(lambda z: decode_with_grad(vae, z), latent, LANDMARKS, **kw)
        reference = torch.randn(3, 512, generator=torch.Generator().manual_seed(2))
        loss = face_similarity_loss(rec(crops), reference)
        loss.backward()
        return loss.detach(), latent.grad.flatten()

    full_loss, full_grad = loss_and_grad(decode_face_crops_full)
    crop_loss, crop_grad = loss_and_grad(decode_face_crops, margin=8, recompute=recompute)
    assert abs(float(crop_loss - full_loss)) < 0.02, (crop_loss, full_loss)
    assert F.cosine_similarity(crop_grad, full_grad, dim=0) > 0.9


def test_trainer_face_loss_decodes_windows_not_the_image(tiny_config, frozen_models, monkeypatch):
    """The objective's default (``loss.face_decode: crops``) decodes one window per face, each smaller than
    the latent; ``full`` decodes the whole latent; both give nearly the same face loss."""
    import train.trainer as trainer_module

    decoded = []
    real = trainer_module.decode_with_grad
    monkeypatch.setattr(trainer_module, "decode_with_grad", lambda vae, z: decoded.append(z.shape[-2:]) or real(vae, z))
    losses = {}
    for mode in ("crops", "full"):
        decoded.clear()
        cfg = tiny_config("data.id_dropout=0.0", "data.resolution=256", f"loss.face_decode={mode}")
        tr = trainer_module.Trainer(cfg, models=frozen_models)
        s = tr.prepare(tr.data.build(0, 0))
        noise = torch.randn(s.x0.shape, generator=torch.Generator().manual_seed(0))
        losses[mode] = float(tr.objective(s, torch.tensor([0.3]), noise)["face"].detach())
        shapes = {tuple(shape) for shape in decoded}
        if mode == "full":
            assert shapes == {(32, 32)}, shapes
        else:
            assert len(decoded) == len(s.keep) and all(h * w < 32 * 32 for h, w in shapes), decoded
    assert abs(losses["crops"] - losses["full"]) < 0.02, losses
