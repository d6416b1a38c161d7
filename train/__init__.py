"""AnyPhoto offline trainer (runs without ComfyUI). See docs/training.md."""
