"""IdentityIsolatedSampler: ComfyUI sampling with identity guidance and the isolation switch."""

from __future__ import annotations

import torch

from .model import identity_inputs_of
from .patching import ALL_VISIBLE_FLAG, DISABLE_FLAG, NULL_FLAG


def with_flags(model_options: dict, **flags) -> dict:
    """Shallow copy of ``model_options`` whose ``transformer_options`` also carries ``flags``."""
    out = dict(model_options or {})
    out["transformer_options"] = {**(model_options or {}).get("transformer_options", {}), **flags}
    return out


def combine(v_noid: torch.Tensor, v_id: torch.Tensor, scale: float) -> torch.Tensor:
    """Identity guidance ``v_noid + s * (v_id - v_noid)`` (also valid on denoised predictions)."""
    return v_noid + scale * (v_id - v_noid)


#: identity_null widget choice -> the flag of the second pass (trained null, or no identities at all)
NULL_PASS_FLAGS = {"trained null": NULL_FLAG, "no identities": DISABLE_FLAG}


def make_guider(model, identity_guidance: float, isolation: bool, identity_null: str = "trained null"):
    import comfy.samplers

    second_pass = NULL_PASS_FLAGS[identity_null]

    class AnyPhotoGuider(comfy.samplers.CFGGuider):
        """CFGGuider whose prediction adds an identity-dropped pass when identity_guidance != 1."""

        def predict_noise(self, x, timestep, model_options=None, seed=None):
            opts = with_flags(model_options, **{ALL_VISIBLE_FLAG: not isolation})
            with_id = super().predict_noise(x, timestep, model_options=opts, seed=seed)
            if identity_guidance == 1.0:
                return with_id
            without = super().predict_noise(
                x, timestep, model_options=with_flags(opts, **{second_pass: True}), seed=seed
            )
            return combine(without, with_id, identity_guidance)

    return AnyPhotoGuider(model)


class AnyPhotoIdentityIsolatedSampler:
    DESCRIPTION = (
        "Samples a patched AnyPhoto MODEL. FLUX.1-dev: cfg 1 and FluxGuidance on the prompt. Identity "
        "guidance > 1 adds a pass with the identities dropped (by default the trained null: zero tokens and "
        "embeddings, as in training's identity dropout): v_noid + s * (v_id - v_noid)."
    )

    @classmethod
    def INPUT_TYPES(cls):
        try:
            import comfy.samplers

            samplers, schedulers = comfy.samplers.KSampler.SAMPLERS, comfy.samplers.KSampler.SCHEDULERS
        except ImportError:
            samplers, schedulers = ["euler"], ["simple"]
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "the MODEL from AnyPhotoApply"}),
                "positive": ("CONDITIONING", {"tooltip": "prompt (with FluxGuidance)"}),
                "negative": ("CONDITIONING", {"tooltip": "negative prompt; only used when cfg > 1"}),
                "latent_image": ("LATENT", {"tooltip": "empty latent of the canvas size"}),
                "seed": (
                    "INT",
                    {
                        "default": 0,
                        "min": 0,
                        "max": 0xFFFFFFFFFFFFFFFF,
                        "control_after_generate": True,
                        "tooltip": "noise seed",
                    },
                ),
                "steps": ("INT", {"default": 28, "min": 1, "max": 10000, "tooltip": "sampling steps"}),
                "cfg": (
                    "FLOAT",
                    {
                        "default": 1.0,
                        "min": 0.0,
                        "max": 100.0,
                        "step": 0.1,
                        "tooltip": "classifier-free guidance; 1 for FLUX.1-dev (identities act on the positive only)",
                    },
                ),
                "sampler_name": (samplers, {"default": "euler", "tooltip": "sampler"}),
                "scheduler": (schedulers, {"default": "simple", "tooltip": "noise schedule"}),
                "denoise": (
                    "FLOAT",
                    {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": "1 = from pure noise"},
                ),
                "identity_guidance": (
                    "FLOAT",
                    {
                        "default": 1.0,
                        "min": 0.0,
                        "max": 10.0,
                        "step": 0.05,
                        "tooltip": "1 = off (the paper); > 1 runs an extra pass without identities",
                    },
                ),
                "isolation": (
                    "BOOLEAN",
                    {
                        "default": True,
                        "tooltip": "identity-isolated attention; off = the paper's 'all visible' ablation",
                    },
                ),
            },
            "optional": {
                "identity_null": (
                    list(NULL_PASS_FLAGS),
                    {
                        "default": "trained null",
                        "tooltip": "identity guidance's second pass: the null that training's identity dropout "
                        "learned (zero tokens and embeddings), or no identities at all",
                    },
                ),
            },
        }

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "sample"
    CATEGORY = "AnyPhoto/sampling"

    def sample(
        self,
        model,
        positive,
        negative,
        latent_image,
        seed,
        steps,
        cfg,
        sampler_name,
        scheduler,
        denoise,
        identity_guidance,
        isolation,
        identity_null="trained null",
    ):
        import comfy.model_management
        import comfy.sample
        import comfy.samplers
        import latent_preview

        latent = comfy.sample.fix_empty_latent_channels(model, latent_image["samples"])
        inputs = identity_inputs_of(model)
        if inputs is not None:
            inputs.check_latent(latent.shape[-2:])
        if denoise <= 0.0:
            return (dict(latent_image, samples=latent),)
        total = int(steps / denoise)
        sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), scheduler, total)
        sigmas = sigmas[-(steps + 1) :].cpu()
        noise = comfy.sample.prepare_noise(latent, seed, latent_image.get("batch_index"))
        guider = make_guider(model, identity_guidance, isolation, identity_null)
        guider.set_conds(positive, negative)
        guider.set_cfg(cfg)
        callback = latent_preview.prepare_callback(model, steps)
        samples = guider.sample(
            noise,
            latent,
            comfy.samplers.sampler_object(sampler_name),
            sigmas,
            denoise_mask=latent_image.get("noise_mask"),
            callback=callback,
            seed=seed,
        )
        out = dict(latent_image)
        out.pop("noise_mask", None)
        out["samples"] = samples.to(comfy.model_management.intermediate_device())
        return (out,)
