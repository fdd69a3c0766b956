"""Which examples each training step takes: reproducible epochs of global batches, split over ranks.

An epoch is a permutation drawn from (seed, epoch), cut into global batches of `batch_size`; a
resumed run starts at the batch it stopped before. With several processes each global batch is
split into consecutive slices, one per rank (the first `total % world` ranks take one more). This
plays the part of torch's DistributedSampler but keeps foley's order: every rank draws the same
permutation, the global batch is exactly the single-process batch, so training on N processes
with batch_size B follows the same batches as one process with B, and resumes exactly.

A rank needs at least one example per step (DDP's gradient exchange waits for every rank), so
with several processes a last batch smaller than the number of ranks joins the batch before it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class BatchShare:
    """This rank's part of a global batch: examples first .. first + count - 1 of `total`."""

    first: int
    count: int
    total: int
    world: int = 1

    @property
    def weight(self) -> float:
        """This rank's part of the batch mean: a global mean is the sum over ranks of weight * local mean."""
        return self.count / self.total

    @property
    def gradient_scale(self) -> float:
        """What a local mean loss is multiplied by before backward, so that DDP's gradient average
        over ranks is the gradient of the global batch mean (1 when the slices are equal)."""
        return self.count * self.world / self.total


def share_of(total: int, rank: int, world: int) -> BatchShare:
    """Rank `rank`'s consecutive slice of `total` examples split over `world` ranks."""
    base, extra = divmod(total, world)
    first = rank * base + min(rank, extra)
    return BatchShare(first, base + (rank < extra), total, world)


class EpochBatches:
    """The global batches of one epoch, from batch `start` on, as lists of example indices."""

    def __init__(self, size: int, batch_size: int, seed: int, epoch: int, start: int = 0, min_last: int = 1):
        generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        order = torch.randperm(size, generator=generator).tolist()
        count = batches_per_epoch(size, batch_size, min_last)
        self.batches = [order[i * batch_size : (i + 1) * batch_size] for i in range(count)]
        self.batches[-1] = order[(count - 1) * batch_size :]  # the last takes a too-small remainder
        self.start = start

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches[self.start :])

    def __len__(self) -> int:
        return len(self.batches) - self.start

    def shards(self, rank: int, world: int) -> tuple[list[list[int]], list[BatchShare]]:
        """This rank's slice of each remaining global batch, and where it sits in that batch."""
        shares = [share_of(len(batch), rank, world) for batch in self]
        return [batch[s.first : s.first + s.count] for batch, s in zip(self, shares)], shares


def batches_per_epoch(size: int, batch_size: int, min_last: int = 1) -> int:
    """Global batches in an epoch; a last batch smaller than `min_last` joins the one before it."""
    count = math.ceil(size / batch_size)
    remainder = size % batch_size
    return count - 1 if count > 1 and 0 < remainder < min_last else count
