"""The FLUX VAE loader on a BFL/LDM-layout file, checked against ComfyUI's own VAE modules.

ComfyUI's ``Encoder``/``Decoder`` use the black-forest-labs key layout of ``ae.safetensors``. A tiny
random-weight pair saved from them must load through ``anyphoto_core.app.models.vae`` (diffusers'
single-file conversion) and encode/decode exactly as ComfyUI does.
"""

import torch
from safetensors.torch import save_file

from anyphoto_core.app.models.vae import FLUX_VAE_CONFIG, load_flux_vae

TINY_LDM = dict(
    double_z=True,
    z_channels=16,
    resolution=64,
    in_channels=3,
    out_ch=3,
    ch=32,
    ch_mult=[1, 1, 1, 1],
    num_res_blocks=1,
    attn_resolutions=[],
    dropout=0.0,
)
TINY_DIFFUSERS = dict(FLUX_VAE_CONFIG, block_out_channels=[32, 32, 32, 32], layers_per_block=1, sample_size=64)


def test_bfl_layout_vae_matches_comfyui(comfy, tmp_path):
    from comfy.ldm.modules.diffusionmodules.model import Decoder, Encoder

    torch.manual_seed(0)
    encoder, decoder = Encoder(**TINY_LDM).eval(), Decoder(**TINY_LDM).eval()
    with torch.no_grad():
        for p in list(encoder.parameters()) + list(decoder.parameters()):
            p.normal_(0, 0.05)
    sd = {f"encoder.{k}": v.contiguous() for k, v in encoder.state_dict().items()}
    sd.update({f"decoder.{k}": v.contiguous() for k, v in decoder.state_dict().items()})
    path = tmp_path / "ae.safetensors"
    save_file(sd, path)
    vae = load_flux_vae(path, config=TINY_DIFFUSERS)

    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        mean_comfy = encoder(x)[:, :16]
        z = torch.randn(1, 16, 8, 8)
        image_comfy = decoder(z)
        mean_ours = vae.model.encode(x).latent_dist.mode()
        image_ours = vae.model.decode(z).sample
    torch.testing.assert_close(mean_ours, mean_comfy, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(image_ours, image_comfy, rtol=1e-4, atol=1e-5)
    # model-space latents: (z - shift) * scale, and back
    torch.testing.assert_close(vae.encode(x), (mean_comfy - 0.1159) * 0.3611, rtol=1e-4, atol=1e-5)
