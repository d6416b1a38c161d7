"""Device hygiene: a whole AnyPhoto forward with model, adapter and inputs on the ``meta`` device.

A tensor the method creates without ``device=`` lands on the CPU and cannot meet the meta tensors, so
this catches, on a CPU-only machine, what would otherwise first fail (or silently sync) on a GPU. A trainer step
and a pipeline generation read data-dependent values and cannot run on ``meta``: see
``tests/train/test_trainer_device.py`` and ``tests/test_pipeline.py`` (``fixtures/own_default_device.py``).
"""

from tests.test_flux_anyphoto import _identities, _inputs
from tests.tiny import tiny_adapter, tiny_flux


def test_anyphoto_forward_runs_on_a_non_default_device():
    model, adapter = tiny_flux(), tiny_adapter().double()
    args = _inputs()
    identities = _identities(adapter, (3, 2, 1))
    model, adapter = model.to("meta"), adapter.to("meta")
    meta_args = tuple(a.to("meta") for a in args)
    meta_ids = identities.to("meta")
    meta_ids = type(meta_ids)(
        meta_ids.tokens, meta_ids.ids, meta_ids.lengths, meta_ids.delta, meta_ids.grid, adapter.lora_delta
    )
    out = model.forward_anyphoto(*meta_args, meta_ids)
    assert out.device.type == "meta" and out.shape == args[0].shape and out.dtype == args[0].dtype
