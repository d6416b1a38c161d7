"""Nodes that replace FLUX's forward (TeaCache-style caches) and skip ComfyUI's ``post_input`` patches must be
refused with a clear error, not give a picture whose last image tokens were taken for identity tokens."""

import pytest

from integration import comfy_harness
from integration.test_nodes_comfy import _apply, _run


def test_forward_without_post_input_is_refused(base, monkeypatch):
    """A stand-in for TeaCache's ``teacache_flux_forward``: ComfyUI's forward_orig with the post_input patches
    dropped (TeaCache's own copy of the forward never runs them), installed on the instance the way TeaCache's
    ``patch.multiple`` does."""
    patched = _apply(base, 2)
    dm = base.model.diffusion_model
    original = dm.forward_orig

    def forward_skipping_post_input(*args, **kwargs):
        args = list(args)
        options = kwargs.get("transformer_options", args[8] if len(args) > 8 else {})
        options = dict(options, patches={k: v for k, v in options.get("patches", {}).items() if k != "post_input"})
        if len(args) > 8:
            args[8] = options
        else:
            kwargs["transformer_options"] = options
        return original(*args, **kwargs)

    monkeypatch.setattr(dm, "forward_orig", forward_skipping_post_input)
    with pytest.raises(RuntimeError, match=r"identity tokens were never added .* \(e\.g\. TeaCache\)"):
        _run(patched, cfg=1.0, batch=1)
    monkeypatch.undo()
    assert "forward_orig" not in vars(dm)  # the class's forward is back


@pytest.fixture(scope="module")
def base(comfy):
    return comfy_harness.build_tiny_flux(seed=0)
