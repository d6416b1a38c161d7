"""ComfyUI entry point of the AnyPhoto node pack.

ComfyUI imports this folder as a custom node package; the node classes live in ``nodes/`` and
the method in ``anyphoto_core/`` (which never imports ComfyUI).
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:  # make ``anyphoto_core`` importable by absolute name
    sys.path.insert(0, _HERE)

if __package__:  # imported by ComfyUI as the custom-node package
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
else:  # imported as a plain module (pytest collecting a checkout whose folder name is no identifier)
    NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = {}, {}

WEB_DIRECTORY = "./web"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
