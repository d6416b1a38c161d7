"""AnyPhoto core: the one implementation of the AnyPhoto method, independent of any host.

Modules (each with one job): ``geometry`` (ArcFace template, similarity fits, boxes),
``placements`` (where each identity goes), ``canvas`` (location canvas, paper appendix 0.A.3),
``tokens`` (location-aligned token pruning), ``adapter`` (projector + identity-only LoRA, file
format), ``attention`` (identity-isolated attention), ``blocks`` (AnyPhoto block forwards over
FLUX modules), ``flux`` (reference FLUX.1 transformer), ``sampling`` (FLUX.1-dev schedule, Euler,
identity guidance), ``faces`` (detection, alignment, ArcFace embeddings).

This package never imports ComfyUI.
"""

__version__ = "0.1.0"
