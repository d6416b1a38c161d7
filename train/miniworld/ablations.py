"""The paper's ablations (Table 2, Tables A-B) as config switches of the normal trainer on
``train/configs/miniworld.yaml``: ``python -m train.miniworld fit-ablation NAME`` runs
``python -m train fit --config train/configs/miniworld.yaml <overrides> run.output=runs/miniworld/<NAME>``."""

from __future__ import annotations

from train.degradations import DEGRADATIONS

CONFIG = "train/configs/miniworld.yaml"

#: name -> trainer overrides.
ABLATIONS: dict[str, list[str]] = {
    "no_modulation": ["model.modulation=false"],
    "all_visible": ["model.isolate=false"],
    "no_face_loss": ["loss.face_weight=0"],
    "no_replacement_degradation": [
        "data.replace_max=0",
        "data.degradations={" + ", ".join(f"{name}: 0" for name in DEGRADATIONS) + "}",
    ],
}


def ablation_args(name: str) -> list[str]:
    """``python -m train`` arguments of ablation ``name``."""
    if name not in ABLATIONS:
        raise ValueError(f"unknown ablation {name!r}; one of {sorted(ABLATIONS)}")
    return ["fit", "--config", CONFIG, *ABLATIONS[name], f"run.output=runs/miniworld/{name}"]
