"""Test-only ComfyUI node pack: sample API workflows on a server without real FLUX weights.

Loaded by ComfyUI as a custom node folder (tests/integration/comfy_harness.start_server symlinks it into
``<base>/custom_nodes``). Nodes:

- ``AnyPhotoTestTinyFluxLoader`` (seed, sizes) → MODEL: a tiny random-weight FLUX ModelPatcher.
- ``AnyPhotoTestRandomConditioning`` (model, seed, tokens) → CONDITIONING of the model's text widths.
- ``AnyPhotoTestLatentToImage`` (LATENT) → IMAGE: a stand-in for VAEDecode.
- ``AnyPhotoTestTinyVAE`` → VAE: a fixed encode/decode stand-in (tiny_vae.py) for AnyPhotoApply and VAEDecode.
"""

from .tiny_flux import build_tiny_flux, latent_to_image, random_conditioning
from .tiny_vae import TinyVAE

_SEED = ("INT", {"default": 0, "min": 0, "max": 2**31 - 1})


class AnyPhotoTestTinyFluxLoader:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "seed": _SEED,
                "hidden_size": ("INT", {"default": 128, "min": 16, "max": 1024, "step": 16}),
                "num_heads": ("INT", {"default": 2, "min": 1, "max": 16}),
                "depth": ("INT", {"default": 2, "min": 1, "max": 8}),
                "depth_single_blocks": ("INT", {"default": 2, "min": 0, "max": 8}),
            }
        }

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "load"
    CATEGORY = "AnyPhoto/testing"

    def load(self, seed, hidden_size, num_heads, depth, depth_single_blocks):
        return (
            build_tiny_flux(
                seed, hidden_size=hidden_size, num_heads=num_heads, depth=depth, depth_single_blocks=depth_single_blocks
            ),
        )


class AnyPhotoTestRandomConditioning:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {"model": ("MODEL",), "seed": _SEED, "tokens": ("INT", {"default": 16, "min": 1, "max": 512})}
        }

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "make"
    CATEGORY = "AnyPhoto/testing"

    def make(self, model, seed, tokens):
        return (random_conditioning(model, seed, tokens),)


class AnyPhotoTestLatentToImage:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"samples": ("LATENT",)}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "convert"
    CATEGORY = "AnyPhoto/testing"

    def convert(self, samples):
        return (latent_to_image(samples["samples"]),)


class AnyPhotoTestTinyVAE:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    RETURN_TYPES = ("VAE",)
    FUNCTION = "load"
    CATEGORY = "AnyPhoto/testing"

    def load(self):
        return (TinyVAE(),)


NODE_CLASS_MAPPINGS = {
    "AnyPhotoTestTinyFluxLoader": AnyPhotoTestTinyFluxLoader,
    "AnyPhotoTestRandomConditioning": AnyPhotoTestRandomConditioning,
    "AnyPhotoTestLatentToImage": AnyPhotoTestLatentToImage,
    "AnyPhotoTestTinyVAE": AnyPhotoTestTinyVAE,
}
