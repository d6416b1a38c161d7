"""Device hygiene of a whole trainer step (``tests/test_device_hygiene.py`` covers the forward on ``meta``).

A trainer step cannot run on ``meta``: it reads data-dependent values (which faces carry loss, the face
windows to decode, the loss to check it is finite). Instead the model stays on the CPU and every tensor that
the project's own code creates without ``device=`` lands on ``meta`` (:mod:`fixtures.own_default_device`),
which is what a GPU run does with such a tensor (it lands on the CPU, away from the model). The step covers
sample preparation (VAE, text and recognizer encoders), the core forward with gradient checkpointing, the flow,
face (window decode, differentiable alignment, recognizer) and InfoNCE losses, backward, gradient clipping,
the AdamW and scheduler steps, and the all-reduce of the logged terms.
"""

import pytest
import torch
from fixtures.own_default_device import own_code_default_device

from train.trainer import Trainer

STEP = ("data.id_dropout=0.0", "loss.face_weight=1.0", "loss.nce_weight=0.1", "model.gradient_checkpointing=true")


@pytest.mark.parametrize("face_decode", ["crops", "full"])
def test_trainer_step_creates_no_tensor_on_the_default_device(tiny_config, frozen_models, face_decode):
    """The step runs with stray factories sent to ``meta``, and its terms and new weights equal a plain step's."""
    config = tiny_config(*STEP, f"loss.face_decode={face_decode}")
    plain, redirected = (Trainer(config, models=frozen_models) for _ in range(2))
    expected = plain.train_step()
    with own_code_default_device("meta"):
        terms = redirected.train_step()
    assert terms == expected and {"flow", "face", "nce"} <= set(terms)
    after, before = redirected.adapter.adapter_state_dict(), plain.adapter.adapter_state_dict()
    for name, value in after.items():
        assert value.device.type == "cpu"
        torch.testing.assert_close(value, before[name], rtol=0, atol=0, msg=name)
    fresh = Trainer(config, models=frozen_models).adapter.adapter_state_dict()
    assert any(not torch.equal(fresh[k], v) for k, v in after.items())  # the optimizer step moved the weights
