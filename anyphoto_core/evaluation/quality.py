"""Optional image-quality scores of MultiID-Bench: CLIP-I, CLIP-T and the aesthetic score.

All models load from local folders only (``local_files_only=True``, safetensors weights); nothing
is downloaded. When a package or a model folder is missing, the scorer is absent, its columns
are reported as "n/a" and :attr:`QualityScorers.notes` says once what to install or put where.

Layout under the ``--models`` root:

* ``clip-vit-base-patch16/``: Hugging Face ``openai/clip-vit-base-patch16`` (``config.json``,
  ``model.safetensors``, tokenizer and preprocessor files) — CLIP-I and CLIP-T;
* ``siglip-so400m-patch14-384/`` (``google/siglip-so400m-patch14-384``) plus
  ``aesthetic_predictor_v2_5.safetensors`` (the predictor head's state dict, converted once from
  the published ``.pth``) — the aesthetic score, through the ``aesthetic-predictor-v2-5`` package.

Definitions as the bench (``metrics/clip_metric.py``, ``metrics/aesthetic_metric.py``): features
L2-normalised, raw cosine (no x100 or x2.5 scaling); CLIP-I = cos(image(GT), image(generated)),
CLIP-T = cos(image(generated), text(prompt)) with the prompt truncated to 77 tokens; aesthetic =
the predictor's logit (about 1..10). The bench runs the aesthetic model in bfloat16 on GPU; this
runs it in float32, which can differ in the third decimal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

CLIP_DIR = "clip-vit-base-patch16"
SIGLIP_DIR = "siglip-so400m-patch14-384"
AESTHETIC_HEAD = "aesthetic_predictor_v2_5.safetensors"


def _features(output):
    """Projected features from ``get_*_features``: a tensor (transformers 4) or an output object (5)."""
    return output if hasattr(output, "norm") else output.pooler_output


class ClipScorer:
    """CLIP ViT-B/16 image/text cosines, loaded from a local Hugging Face folder."""

    def __init__(self, model, processor):
        self.model = model.eval()
        self.processor = processor

    @classmethod
    def from_local(cls, folder) -> ClipScorer:
        from transformers import CLIPModel, CLIPProcessor

        folder = Path(folder)
        try:
            model = CLIPModel.from_pretrained(folder, local_files_only=True, use_safetensors=True)
            processor = CLIPProcessor.from_pretrained(folder, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ValueError(
                f"the CLIP model in {folder} cannot be loaded ({exc}); it must be a complete "
                "openai/clip-vit-base-patch16 folder with model.safetensors"
            ) from exc
        return cls(model, processor)

    def _image(self, image):
        import torch

        with torch.no_grad():
            inputs = self.processor(images=image, return_tensors="pt")
            feats = _features(self.model.get_image_features(pixel_values=inputs["pixel_values"]))
        return torch.nn.functional.normalize(feats, dim=-1)[0]

    def _text(self, text: str):
        import torch

        with torch.no_grad():
            inputs = self.processor.tokenizer([text], padding=True, truncation=True, max_length=77, return_tensors="pt")
            feats = _features(self.model.get_text_features(**inputs))
        return torch.nn.functional.normalize(feats, dim=-1)[0]

    def image_similarity(self, a, b) -> float:
        """CLIP-I: cosine of two PIL images' normalised image features."""
        return float(self._image(a) @ self._image(b))

    def text_similarity(self, image, text: str) -> float:
        """CLIP-T: cosine of a PIL image's and a prompt's normalised features."""
        return float(self._image(image) @ self._text(text))


class AestheticScorer:
    """aesthetic-predictor-v2-5 (SigLIP so400m + MLP head), loaded from local files."""

    def __init__(self, model, processor):
        self.model = model.eval()
        self.processor = processor

    @classmethod
    def from_local(cls, siglip_folder, head_file) -> AestheticScorer:
        from aesthetic_predictor_v2_5 import AestheticPredictorV2_5Model, AestheticPredictorV2_5Processor
        from safetensors.torch import load_file

        try:
            model = AestheticPredictorV2_5Model.from_pretrained(
                siglip_folder, local_files_only=True, use_safetensors=True
            )
            processor = AestheticPredictorV2_5Processor.from_pretrained(siglip_folder, local_files_only=True)
            model.layers.load_state_dict(load_file(str(head_file)))
        except (OSError, ValueError, RuntimeError) as exc:
            raise ValueError(
                f"the aesthetic predictor ({siglip_folder} + {head_file}) cannot be loaded ({exc})"
            ) from exc
        return cls(model, processor)

    def score(self, image) -> float:
        import torch

        with torch.no_grad():
            pixels = self.processor(images=image, return_tensors="pt")["pixel_values"]
            return float(self.model(pixel_values=pixels).logits.squeeze())


@dataclass
class QualityScorers:
    """The available scorers; each method returns ``None`` ("n/a") when its scorer is absent."""

    clip: ClipScorer | None = None
    aesthetic_model: AestheticScorer | None = None
    notes: list[str] = field(default_factory=list)

    def clip_i(self, gt_image, gen_image) -> float | None:
        return None if self.clip is None else self.clip.image_similarity(gt_image, gen_image)

    def clip_t(self, gen_image, prompt: str) -> float | None:
        return None if self.clip is None else self.clip.text_similarity(gen_image, prompt)

    def aesthetic(self, gen_image) -> float | None:
        return None if self.aesthetic_model is None else self.aesthetic_model.score(gen_image)


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def load_quality_scorers(models_root) -> QualityScorers:
    """Load whatever of CLIP and the aesthetic predictor is available under ``models_root`` (or ``None``)."""
    scorers = QualityScorers()
    root = Path(models_root) if models_root is not None else None
    clip_dir = root / CLIP_DIR if root is not None else None
    if not _has_module("transformers"):
        scorers.notes.append(
            "CLIP-I/CLIP-T/Aes: n/a — the transformers package is not installed (pip install transformers)"
        )
        return scorers
    if clip_dir is None or not (clip_dir / "config.json").is_file():
        scorers.notes.append(
            f"CLIP-I/CLIP-T: n/a — no CLIP model: put openai/clip-vit-base-patch16 in "
            f"{clip_dir or '<--models>/' + CLIP_DIR}"
        )
    else:
        scorers.clip = ClipScorer.from_local(clip_dir)
    siglip_dir = root / SIGLIP_DIR if root is not None else None
    head = root / AESTHETIC_HEAD if root is not None else None
    if not _has_module("aesthetic_predictor_v2_5"):
        scorers.notes.append(
            "Aes: n/a — the aesthetic-predictor-v2-5 package is not installed "
            "(pip install --no-deps aesthetic-predictor-v2-5)"
        )
    elif siglip_dir is None or not (siglip_dir / "config.json").is_file() or not head.is_file():
        scorers.notes.append(
            f"Aes: n/a — put google/siglip-so400m-patch14-384 in <--models>/{SIGLIP_DIR} and the "
            f"predictor head as <--models>/{AESTHETIC_HEAD}"
        )
    else:
        scorers.aesthetic_model = AestheticScorer.from_local(siglip_dir, head)
    return scorers
