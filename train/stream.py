"""The data stream: which sample each process trains on at each step, and the DataLoader that builds them ahead.

Positions. Optimizer step ``s`` consumes the global batch ``G = world * accumulation`` samples
``start + (s - start_step) * G + [0, G)``; process ``rank`` takes micro-batch ``m``'s sample
``... + m * world + rank``. ``(start, start_step)`` is ``(0, 0)`` for a new run and ``(samples consumed,
step)`` of the checkpoint on resume, so a run resumed with another number of processes or another
accumulation continues the stream where it stopped: every sample once, none skipped (re-sharded).
With the same ``G`` the positions are exactly those of an uninterrupted run (bit-exact resume).

Loading. A sample depends only on ``(position, step)`` (:meth:`~train.dataset.SampleBuilder.build`), so
building it in ``data.workers`` DataLoader worker processes, ``data.prefetch`` samples ahead per worker,
gives the same samples in the same order as building them in the training process (``workers: 0``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from torch.utils.data import DataLoader, Dataset

from .dataset import SampleBuilder, TrainingSample


@dataclass(frozen=True)
class StreamLayout:
    """``world`` processes x ``accumulation`` micro-batches per step; the stream restarted at sample
    ``start`` on step ``start_step``."""

    world: int
    accumulation: int
    start: int = 0
    start_step: int = 0

    @property
    def global_batch(self) -> int:
        return self.world * self.accumulation

    def position(self, step: int, micro: int, rank: int) -> int:
        """Stream position of process ``rank``'s micro-batch ``micro`` of optimizer ``step``."""
        return self.start + (step - self.start_step) * self.global_batch + micro * self.world + rank

    def consumed(self, step: int) -> int:
        """Samples the whole run has consumed before ``step`` (what a checkpoint records)."""
        return self.position(step, 0, 0)


class _Samples(Dataset):
    """Map-style view of a :class:`SampleBuilder`: item ``(position, step)`` is the sample built for them."""

    def __init__(self, builder: SampleBuilder):
        self.builder = builder

    def __len__(self) -> int:
        return len(self.builder)

    def __getitem__(self, key: tuple[int, int]) -> TrainingSample:
        position, step = key
        return self.builder.build(position, step)


def _as_is(sample: TrainingSample) -> TrainingSample:
    return sample


def sample_loader(
    builder: SampleBuilder, keys: list[tuple[int, int]], workers: int, prefetch: int
) -> Iterator[TrainingSample]:
    """The samples for ``keys`` (``(position, step)`` pairs, in order), built by ``workers`` processes
    ``prefetch`` samples ahead each (``workers=0``: built in this process when asked for)."""
    if workers == 0:
        return (builder.build(p, s) for p, s in keys)
    loader = DataLoader(
        _Samples(builder),
        sampler=keys,
        batch_size=None,
        collate_fn=_as_is,
        num_workers=workers,
        prefetch_factor=prefetch,
    )
    return iter(loader)
