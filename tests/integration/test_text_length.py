"""The pipeline's T5 positions equal ComfyUI's FLUX text encoding (the nodes' and the trainer's). Needs COMFYUI_PATH."""

from anyphoto_core.app.models.text_encoders import TextEncoders, find_tokenizer_dirs, load_tokenizer
from integration import comfy_harness


def test_pipeline_t5_positions_equal_comfyui_flux_tokenizer(comfy):
    """ComfyUI pads FLUX's T5 prompt to at least 256 positions and keeps longer prompts whole; the pipeline's
    :class:`TextEncoders` (defaults, ComfyUI's own T5 tokenizer files) gives the same number of positions."""
    from comfy.text_encoders.flux import FluxTokenizer

    dirs = find_tokenizer_dirs([comfy_harness.comfyui_path()])
    ours = TextEncoders(None, None, load_tokenizer(dirs.clip), load_tokenizer(dirs.t5))
    theirs = FluxTokenizer()
    positions = []
    for prompt in ("a man", " ".join(["two women and a man in a sunny park"] * 40)):
        (comfy_positions,) = theirs.tokenize_with_weights(prompt)["t5xxl"]  # one chunk (ComfyUI's max is 99999999)
        assert ours.t5_length(prompt) == len(comfy_positions), prompt[:20]
        positions.append(len(comfy_positions))
    assert positions[0] == 256 and 256 < positions[1] < 512  # both of ComfyUI's cases: padded, and whole
