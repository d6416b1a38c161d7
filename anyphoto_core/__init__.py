"""AnyPhoto core: the one implementation of the AnyPhoto method, independent of any host.

Modules (each with one job): ``geometry`` (ArcFace template, similarity fits, boxes),
``placements`` (where each identity goes), ``canvas`` (location canvas, paper appendix 0.A.3),
``tokens`` (location-aligned token pruning), ``conditioning`` (faces + placements -> identity
inputs), ``identity`` (``IdentityInputs``, the one type for a forward's identity inputs),
``embeddings`` (the adapter's embedding kind, recognizer check), ``adapter`` (projector +
identity-only LoRA, file format and recipe), ``attention`` (identity-isolated attention),
``blocks`` (AnyPhoto block forwards over FLUX modules), ``flux`` (reference FLUX.1 transformer),
``sampling`` (FLUX.1-dev schedule, Euler, identity guidance), ``faces`` (detection, alignment,
ArcFace embeddings), ``notices`` and ``validation`` (user-facing warnings and input checks).

Applications built on the method, which the method never imports: ``app`` (standalone pipeline,
CLI, previews, model loaders), ``evaluation`` (metrics and reports), ``headless`` (ComfyUI server
client). This package never imports ComfyUI.
"""

__version__ = "0.1.0"
