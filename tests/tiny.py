"""Tiny random-weight FLUX models and adapters in the real layout, for tests."""

from __future__ import annotations

import torch

from anyphoto_core.adapter import AdapterConfig, AnyPhotoAdapter
from anyphoto_core.flux import Flux, FluxParams

TINY = FluxParams.tiny(hidden_size=64, num_heads=2, depth=2, depth_single_blocks=2, context_in_dim=32, vec_in_dim=16)


def tiny_flux(seed: int = 0, params: FluxParams = TINY, dtype=torch.float64) -> Flux:
    """Random FLUX with non-trivial norms and biases (so every path matters)."""
    torch.manual_seed(seed)
    model = Flux(params)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("scale"):
                p.uniform_(0.5, 1.5)
            elif name.endswith("bias"):
                p.normal_(0, 0.05)
    return model.to(dtype).eval()


def tiny_adapter(params: FluxParams = TINY, rank: int = 4, seed: int = 1, nonzero: bool = True) -> AnyPhotoAdapter:
    """Adapter for ``params``; ``nonzero`` fills LoRA B and the projector's last layer randomly."""
    torch.manual_seed(seed)
    cfg = AdapterConfig.for_flux(params, rank=rank, alpha=float(rank), projector_hidden=32)
    adapter = AnyPhotoAdapter(cfg)
    if nonzero:
        with torch.no_grad():
            for key, t in adapter.adapter_state_dict().items():
                if key.endswith("lora_B.weight") or key.startswith("projector.2"):
                    t.normal_(0, 0.1)
    return adapter
