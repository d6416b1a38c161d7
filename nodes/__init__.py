"""AnyPhoto ComfyUI nodes (thin adapters over anyphoto_core)."""

NODE_CLASS_MAPPINGS: dict = {}
NODE_DISPLAY_NAME_MAPPINGS: dict = {}
