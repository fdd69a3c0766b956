"""Learning-rate schedules: the factor that multiplies the configured learning rate at each step.

``constant``: 1 throughout (the DCASE baseline's default). ``cosine``: a linear warm-up from
1 / warmup_steps to 1 over the first ``warmup_steps`` steps, then half a cosine from 1 down to 0 at
the last step. The factor is a pure function of the step, so a resumed run continues the schedule
exactly.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

from foley.config import TrainConfig
from foley.train.batches import batches_per_epoch
from foley.util import distributed

SCHEDULES = ("constant", "cosine")


def lr_factor(schedule: str, total_steps: int, warmup_steps: int = 0) -> Callable[[int], float]:
    """The factor at step s (0-based: the factor the s-th optimizer step uses)."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown learning-rate schedule {schedule!r}; schedules: {', '.join(SCHEDULES)}")
    if total_steps < 1 or warmup_steps < 0:
        raise ValueError(f"need total_steps >= 1 and warmup_steps >= 0, got {total_steps} and {warmup_steps}")

    def factor(step: int) -> float:
        warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0
        if schedule == "constant":
            return warm
        decay_steps = max(1, total_steps - warmup_steps)
        progress = min(1.0, max(0.0, (step - warmup_steps) / decay_steps))
        return warm * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def planned(train: TrainConfig, examples: int) -> TrainConfig:
    """The `train:` section with its epochs for `examples` training examples: with `steps` > 0, the
    fewest whole epochs that make at least `steps` optimizer steps on this many processes, but at
    most `epochs` (so a small set trains longer than its few batches per epoch, yet not so many
    passes that the model memorises it); otherwise the section as it is."""
    if not train.steps:
        return train
    per_epoch = batches_per_epoch(examples, train.batch_size, distributed.world_size())
    return dataclasses.replace(train, epochs=min(train.epochs, max(1, math.ceil(train.steps / per_epoch))))


def schedule_for(train: TrainConfig, examples: int) -> Callable[[int], float] | None:
    """The factor function of a `train:` section over `examples` training examples (the steps of all
    its epochs on this many processes); None for a constant rate without warm-up (no scheduler)."""
    if train.schedule == "constant" and not train.warmup_steps:
        return None
    steps = train.epochs * batches_per_epoch(examples, train.batch_size, distributed.world_size())
    return lr_factor(train.schedule, steps, train.warmup_steps)
