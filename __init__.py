"""ComfyUI entry point of the AnyPhoto node pack.

ComfyUI imports this folder as a custom node package; the node classes live in ``nodes/`` and
the method in ``anyphoto_core/`` (which never imports ComfyUI).

The pack folder is *appended* to ``sys.path`` so that ``anyphoto_core`` imports by absolute name
while every module ComfyUI (or another pack) already provides keeps winning: the pack's own
``nodes/``, ``tests/``, ``train/``, ``benchmarks/`` and ``install.py`` can never shadow them.
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.append(_HERE)

if __package__:  # imported by ComfyUI as the custom-node package
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
else:  # imported as a plain module (pytest collecting a checkout whose folder name is no identifier)
    NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = {}, {}

WEB_DIRECTORY = "./web"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
