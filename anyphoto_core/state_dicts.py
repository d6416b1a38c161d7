"""Loading a state dict into a model built on the meta device, with a mismatch report."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def state_dict_mismatch(model: nn.Module, sd: dict[str, Tensor]) -> str | None:
    """``"missing [...], unexpected [...], wrong shape [...]"`` (a few keys each), or None if ``sd`` fits."""
    expected = model.state_dict()
    missing, unexpected = expected.keys() - sd.keys(), sd.keys() - expected.keys()
    bad_shape = [k for k in expected.keys() & sd.keys() if expected[k].shape != sd[k].shape]
    if not (missing or unexpected or bad_shape):
        return None
    return f"missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]}, wrong shape {sorted(bad_shape)[:3]}"


def assign_state_dict(model: nn.Module, sd: dict[str, Tensor], dtype: torch.dtype) -> None:
    """Load ``sd`` (checked with :func:`state_dict_mismatch`) into a meta-device ``model``, cast to ``dtype``."""
    model.load_state_dict({k: v.to(dtype) for k, v in sd.items()}, assign=True)
