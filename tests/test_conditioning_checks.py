"""No person is silently dropped and no bad number reaches the forward (issue 12)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anyphoto_core.canvas import FacePatch
from anyphoto_core.conditioning import build_canvases, check_canvas_tokens, encode_canvas_tokens
from anyphoto_core.geometry import arcface_template
from anyphoto_core.identity import IdentityInputs
from anyphoto_core.placements import Placement


def _patch():
    rng = np.random.default_rng(0)
    return FacePatch.opaque(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8), arcface_template(224))


def _encode(images):  # stand-in VAE: (N, 3, H, W) -> (N, 16, H/8, W/8)
    return torch.nn.functional.avg_pool2d(images, 8).repeat(1, 6, 1, 1)[:, :16]


@pytest.mark.parametrize(
    "box,where",
    [
        ((300.0, 300.0, 380.0, 380.0), "outside"),  # beyond a 256x256 canvas
        ((14.0, 14.0, 18.0, 18.0), "mostly outside of, or too small for,"),  # tiny, on a token corner
    ],
)
def test_person_whose_face_covers_no_token_is_an_error_naming_them(box, where):
    placements = [Placement.from_box((40.0, 40.0, 140.0, 160.0)), Placement.from_box(box)]
    canvases = build_canvases([_patch(), _patch()], placements, (256, 256))
    with pytest.raises(ValueError, match=rf"^person 2: the face pasted at .* is {where} the 256x256 canvas, covers no"):
        encode_canvas_tokens(canvases, _encode, rule="majority", type_index=1.0)
    keeps = check_canvas_tokens(canvases[:1])
    assert keeps[0].sum() > 0
    (tokens,) = encode_canvas_tokens(canvases[:1], _encode, rule="majority", type_index=1.0)
    assert tokens.count == keeps[0].sum()


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_identity_weight_is_refused(bad):
    canvases = build_canvases([_patch()], [Placement.from_box((40, 40, 140, 160))], (256, 256))
    tokens = encode_canvas_tokens(canvases, _encode, rule="majority", type_index=1.0)
    with pytest.raises(ValueError, match=r"identity weights: person 1's weight is (nan|inf)"):
        IdentityInputs.from_tokens(tokens, torch.zeros(1, 8), weights=[bad])
