"""The standalone AnyPhoto pipeline: prompt + identities + placements -> image, outside ComfyUI.

Steps (paper section 3): text encoding (T5-XXL + CLIP-L, then the encoders are freed) -> one
location canvas per identity (:func:`~anyphoto_core.conditioning.build_canvases`) -> VAE-encoded,
location-pruned identity tokens -> FLUX.1-dev sampling with the AnyPhoto forward
(:meth:`~anyphoto_core.flux.Flux.forward_anyphoto`, shifted schedule, Euler, 28 steps, guidance
3.5) -> VAE decode -> PIL image.

Precision: bf16 on CUDA, float32 on CPU. Noise is drawn on the CPU from ``seed`` so a seed gives
the same start on every device.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..adapter import AnyPhotoAdapter, load_adapter
from ..canvas import FacePatch, LocationCanvas
from ..conditioning import IDENTITY_NULLS, build_canvases, encode_canvas_tokens, identity_inputs, null_identity_inputs
from ..embeddings import IdentityEmbeddings
from ..faces import Identity
from ..flux import Flux, load_flux
from ..identity import IdentityInputs
from ..notices import Notice
from ..placements import Placement
from ..sampling import euler_sample, flux_schedule
from ..tokens import PIXELS_PER_TOKEN, image_token_ids, pack_latent, unpack_tokens
from ..validation import check_identity_embeddings
from .models import ModelFiles, TextEncoders, load_flux_vae
from .models.miniworld import load_miniworld_vae, miniworld_dir
from .models.text_encoders import find_tokenizer_dirs, load_text_encoders
from .models.tiny import TINY_VAE_CONFIG, ensure_tiny_models, load_tiny_text_encoders
from .models.vae import FluxVAE

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class GenerationSettings:
    """One generation. ``width``/``height``: output pixels, multiples of 16. ``id_guidance`` 1 = one pass;
    above 1 a second pass runs with ``identity_null`` (``"trained"``: the null that identity dropout
    trained, zero tokens and zero embeddings; ``"none"``: no identities)."""

    prompt: str
    width: int = 1024
    height: int = 1024
    steps: int = 28
    seed: int = 0
    guidance: float = 3.5
    id_guidance: float = 1.0
    identity_weights: tuple[float, ...] | None = None
    identity_null: str = "trained"
    isolate: bool = True  # identity-isolated attention; False = the "all visible" ablation (adapters trained so)

    def __post_init__(self):
        if self.identity_null not in IDENTITY_NULLS:
            raise ValueError(f"identity_null must be one of {IDENTITY_NULLS}, got {self.identity_null!r}")
        for name in ("width", "height"):
            value = getattr(self, name)
            if value < PIXELS_PER_TOKEN or value % PIXELS_PER_TOKEN:
                raise ValueError(f"{name} {value} must be a positive multiple of {PIXELS_PER_TOKEN} pixels")
        if self.steps < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps}")


@dataclass
class GenerationResult:
    image: Image.Image
    canvases: list[LocationCanvas]
    token_counts: list[int]
    timings: dict[str, float] = field(default_factory=dict)
    notices: list[Notice] = field(default_factory=list)


def face_patch(identity: Identity, crop_size: int | None = None) -> FacePatch:
    """The identity's primary face as the canvas patch (aligned crop, its alpha and landmarks)."""
    ref = identity.primary
    return FacePatch(ref.crop, ref.crop_alpha, ref.crop_landmarks)


def default_device() -> tuple[torch.device, torch.dtype]:
    """CUDA with bf16 when available, else CPU with float32."""
    if torch.cuda.is_available():
        return torch.device("cuda"), torch.bfloat16
    return torch.device("cpu"), torch.float32


def builtin_adapter_file(builtin: str, adapter_path=None, folder=None) -> Path | None:
    """The adapter file a built-in set (``"tiny"`` or ``"miniworld"``) loads: ``adapter_path`` when given,
    else the set's own ``adapter.safetensors`` in ``folder`` (default: the set's folder; the tiny set is
    created there if missing). None: the MiniWorld folder has no adapter."""
    if adapter_path is not None:
        return Path(adapter_path)
    if builtin == "tiny":
        return Path(folder or ensure_tiny_models()) / "adapter.safetensors"
    if builtin != "miniworld":
        raise ValueError(f"unknown built-in model set {builtin!r}; expected 'tiny' or 'miniworld'")
    own = Path(folder or miniworld_dir()) / "adapter.safetensors"
    return own if own.is_file() else None


class AnyPhotoPipeline:
    """Loaded models of one run. Build with :meth:`from_files` or :meth:`tiny`."""

    def __init__(
        self,
        flux: Flux,
        vae: FluxVAE,
        text_encoders: TextEncoders,
        adapter: AnyPhotoAdapter | None,
        device: torch.device,
        dtype: torch.dtype,
        files: dict[str, str],
        builtin: str | None = None,
    ):
        self.flux, self.vae, self.text_encoders, self.adapter = flux.eval(), vae, text_encoders, adapter
        self.device, self.dtype, self.files = device, dtype, files
        self.builtin = builtin  # "tiny", "miniworld" (built-in sets) or None (user files)
        self._prompt_cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    @classmethod
    def from_files(cls, files: ModelFiles, tokenizer_roots: Sequence, device=None, dtype=None) -> AnyPhotoPipeline:
        """Load real weights (every role of ``files`` but ``insightface`` must be set; adapter optional)."""
        dev, dt = default_device()
        device, dtype = device or dev, dtype or dt
        find_tokenizer_dirs(tokenizer_roots)  # fail on missing tokenizers before loading gigabytes of weights
        flux = load_flux(files.flux, dtype=dtype, device=device)
        adapter = cls._load_adapter(files.adapter, flux, device, dtype)
        vae = load_flux_vae(files.vae, dtype=dtype, device=device)
        encoders = load_text_encoders(files.clip_l, files.t5, tokenizer_roots, dtype, device)
        names = {k: str(v) for k, v in vars(files).items() if v is not None}
        return cls(flux, vae, encoders, adapter, torch.device(device), dtype, names)

    @classmethod
    def tiny(cls, adapter_path=None, folder=None) -> AnyPhotoPipeline:
        """The built-in random-weight set (CPU, float32), loaded through the real loaders."""
        root = ensure_tiny_models(folder)
        adapter_path = builtin_adapter_file("tiny", adapter_path, root)
        flux = load_flux(root / "flux.safetensors", dtype=torch.float32)
        adapter = cls._load_adapter(adapter_path, flux, "cpu", torch.float32)
        vae = load_flux_vae(root / "vae.safetensors", config=TINY_VAE_CONFIG)
        encoders = load_tiny_text_encoders(root)
        files = {
            "flux": str(root / "flux.safetensors"),
            "vae": str(root / "vae.safetensors"),
            "clip_l": str(root / "clip.safetensors"),
            "t5": str(root / "t5.safetensors"),
            "adapter": str(adapter_path),
        }
        return cls(flux, vae, encoders, adapter, torch.device("cpu"), torch.float32, files, builtin="tiny")

    @classmethod
    def miniworld(cls, adapter_path=None, folder=None, with_adapter: bool = True) -> AnyPhotoPipeline:
        """The trained MiniWorld set (:mod:`.models.miniworld`; CPU, float32): world transformer and VAE,
        tiny text encoders, and the world adapter (``adapter_path``, else the folder's, if any)."""
        root = miniworld_dir(folder)
        flux = load_flux(root / "flux.safetensors", dtype=torch.float32)
        adapter_path = builtin_adapter_file("miniworld", adapter_path, root)
        adapter = cls._load_adapter(adapter_path, flux, "cpu", torch.float32) if with_adapter else None
        files = {"flux": str(root / "flux.safetensors"), "vae": str(root / "vae.safetensors")}
        if adapter is not None:
            files["adapter"] = str(adapter_path)
        encoders = load_tiny_text_encoders()
        vae = load_miniworld_vae(root)
        return cls(flux, vae, encoders, adapter, torch.device("cpu"), torch.float32, files, builtin="miniworld")

    @property
    def is_tiny(self) -> bool:
        """True for the built-in random-weight set (its pictures mean nothing)."""
        return self.builtin == "tiny"

    @staticmethod
    def _load_adapter(path, flux: Flux, device, dtype) -> AnyPhotoAdapter | None:
        if path is None:
            return None
        p = flux.params
        adapter = load_adapter(
            path, hidden_size=p.hidden_size, depth=p.depth, depth_single_blocks=p.depth_single_blocks
        )
        return adapter.to(device=device, dtype=dtype).eval().requires_grad_(False)

    def encode_prompt(self, prompt: str, free_encoders: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """``(txt, y)`` for ``prompt`` (cached); the encoders are freed afterwards unless told not to."""
        if prompt not in self._prompt_cache:
            if self.text_encoders.clip is None:
                raise RuntimeError(
                    "the text encoders were freed after the first prompt; load the pipeline again "
                    "or call encode_prompt(..., free_encoders=False) for several prompts"
                )
            self._prompt_cache[prompt] = self.text_encoders.encode(prompt)
        if free_encoders:
            self.text_encoders.free()
        return self._prompt_cache[prompt]

    def identity_inputs(
        self, identities: Sequence[Identity], placements: Sequence[Placement], size: tuple[int, int], weights=None
    ) -> tuple[IdentityInputs | None, list[LocationCanvas], list[Notice]]:
        """The forward's :class:`IdentityInputs` (None when there are no identities), the canvases and
        the notices for the user. Coverage rule, type index, embedding kind and recognizer are the adapter's."""
        if not identities:
            return None, [], []
        if self.adapter is None:
            raise ValueError(
                "identities were given but no AnyPhoto adapter is loaded; pass --adapter FILE or put "
                "the adapter .safetensors in <models>/anyphoto/"
            )
        recipe = self.adapter.config
        canvases = build_canvases([face_patch(i) for i in identities], placements, size)
        tokens = encode_canvas_tokens(canvases, self.vae.encode, rule=recipe.token_rule, type_index=recipe.type_index)
        chosen, notices = IdentityEmbeddings.from_identities(identities).for_adapter(recipe)
        emb = torch.from_numpy(check_identity_embeddings(chosen, recipe.embedding_dim))
        with torch.no_grad():
            inputs = identity_inputs(self.adapter, tokens, emb, weights)
        return inputs.to(self.device, self.dtype), canvases, notices

    def initial_noise(self, settings: GenerationSettings) -> torch.Tensor:
        """Packed noise ``(1, h_tok * w_tok, 64)`` float32, drawn on the CPU from ``settings.seed``."""
        gen = torch.Generator("cpu").manual_seed(settings.seed)
        noise = torch.randn(1, 16, settings.height // 8, settings.width // 8, generator=gen, device="cpu")
        return pack_latent(noise)

    @torch.no_grad()
    def generate(
        self,
        settings: GenerationSettings,
        identities: Sequence[Identity] = (),
        placements: Sequence[Placement] = (),
        progress: ProgressFn | None = None,
    ) -> GenerationResult:
        """Run the whole pipeline; ``progress(step, total)`` after every sampling step."""
        timings: dict[str, float] = {}
        start = time.perf_counter()
        txt, y = self.encode_prompt(settings.prompt)
        timings["text"] = time.perf_counter() - start
        start = time.perf_counter()
        ids, canvases, notices = self.identity_inputs(
            identities, placements, (settings.width, settings.height), settings.identity_weights
        )
        timings["identity"] = time.perf_counter() - start
        start = time.perf_counter()
        h_tok, w_tok = settings.height // PIXELS_PER_TOKEN, settings.width // PIXELS_PER_TOKEN
        dev, dt = self.device, self.dtype
        img_ids = image_token_ids(h_tok, w_tok, device=dev)[None]
        txt, y = txt.to(dev, dt), y.to(dev, dt)
        txt_ids = torch.zeros(1, txt.shape[1], 3, device=dev)
        guidance = torch.full((1,), settings.guidance, device=dev, dtype=dt)

        null = None
        if ids is not None and settings.id_guidance != 1.0 and settings.identity_null == "trained":
            null = null_identity_inputs(self.adapter, ids)

        def velocity(x, t, with_identity):
            out = self.flux.forward_anyphoto(
                x.to(dt),
                img_ids,
                txt,
                txt_ids,
                t.to(dt),
                y,
                guidance,
                ids if with_identity else null,
                isolate=settings.isolate,
            )
            return out.float()

        callback = (lambda i, n, _x: progress(i, n)) if progress is not None else None
        id_guidance = settings.id_guidance if ids is not None else 1.0
        x = euler_sample(
            velocity,
            self.initial_noise(settings).to(dev),
            flux_schedule(settings.steps, h_tok * w_tok),
            id_guidance,
            callback,
        )
        timings["sampling"] = time.perf_counter() - start
        start = time.perf_counter()
        image = self.vae.decode(unpack_tokens(x, h_tok, w_tok))[0]
        timings["decode"] = time.perf_counter() - start
        pixels = ((image.permute(1, 2, 0).cpu().numpy() + 1.0) * 127.5).round().clip(0, 255).astype(np.uint8)
        counts = [int(n) for n in ids.lengths] if ids is not None else []
        return GenerationResult(Image.fromarray(pixels), canvases, counts, timings, notices)


def model_summary(pipeline: AnyPhotoPipeline) -> dict:
    """JSON-ready description of the loaded models."""
    return {
        "files": {k: str(Path(v)) for k, v in pipeline.files.items()},
        "tiny": pipeline.is_tiny,
        "builtin": pipeline.builtin,
        "device": str(pipeline.device),
        "dtype": str(pipeline.dtype).replace("torch.", ""),
    }
