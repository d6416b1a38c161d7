"""Opt-in tests against a real ComfyUI checkout (``COMFYUI_PATH``); imported as the ``integration`` package
(``tests/`` is on pytest's pythonpath)."""
