"""The one training loop: epochs of reproducible batches, checkpoints, resume, metrics.

A trainer is described by a `Task`: it owns its modules and optimisers, performs one training
step on a batch and returns named losses, and says what to log at the end of an epoch. The loop
owns everything else: the batch order (a permutation drawn from (seed, epoch), so a resumed run
sees the same batches), atomic checkpoints (every `checkpoint_every` steps and at each epoch's
end; the one before is kept as `<name>.prev` and used when the newest turns out corrupt),
resuming from the last checkpoint, RNG state, non-finite loss detection, a progress bar, and
`metrics.csv` (one row per epoch).

By default the loop writes one foley checkpoint file holding the task's state and its own. A
`CheckpointingTask` instead keeps its checkpoints in files of its own format (e.g. HiFi-GAN's
official g_/do_ pairs) in the folder `plan.checkpoint_path`, and stores the loop's `LoopState`
in them; those files are then the whole resume state.
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, runtime_checkable

import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from foley.atomic import atomic_path
from foley.checkpoint import load_newest_checkpoint, rng_state, save_checkpoint, set_rng_state
from foley.config import TrainConfig
from foley.errors import RunError

log = logging.getLogger(__name__)


class Task(Protocol):
    def train_step(self, batch: Any) -> dict[str, float]:
        """One optimisation step on a batch; returns named losses (floats)."""

    def end_epoch(self, epoch: int) -> dict[str, float]:
        """Called after each epoch: scheduler steps, validation, extra metrics to log."""

    def state_dict(self) -> dict[str, Any]:
        """Modules, optimisers and anything else a resumed run needs (tensors and plain types)."""

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class LoopState:
    """Where the loop stands: epochs finished, batches done in the current one, steps, RNG state."""

    epoch: int
    batch_in_epoch: int
    step: int
    rng: dict[str, Any] | None  # None: not saved (e.g. a checkpoint written by other code); left as is


@runtime_checkable
class CheckpointingTask(Protocol):
    """A task that writes its checkpoints itself, in its own format, into a folder."""

    def train_step(self, batch: Any) -> dict[str, float]: ...

    def end_epoch(self, epoch: int) -> dict[str, float]: ...

    def save_checkpoint(self, folder: Path, loop: LoopState) -> None:
        """Write the task's state and `loop` atomically into `folder`."""

    def load_checkpoint(self, folder: Path) -> LoopState | None:
        """Restore the newest complete checkpoint in `folder`; None when there is none."""


@dataclass(frozen=True)
class LoopPlan:
    """What one call of `fit` does and where it keeps its state."""

    train: TrainConfig
    seed: int
    checkpoint_path: Path  # the checkpoint file; for a CheckpointingTask, the folder of its files
    metrics_path: Path
    # format/kind/model_config written into every checkpoint file (unused by a CheckpointingTask)
    checkpoint_header: dict[str, Any] = field(default_factory=dict)
    name: str = "train"
    progress: bool = True


class EpochBatches(Sampler[list[int]]):
    """The batches of one epoch: a permutation drawn from (seed, epoch), from batch `start` on."""

    def __init__(self, size: int, batch_size: int, seed: int, epoch: int, start: int = 0):
        self.size, self.batch_size, self.start = size, batch_size, start
        generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        self.order = torch.randperm(size, generator=generator).tolist()

    def __iter__(self) -> Iterator[list[int]]:
        for first in range(self.start * self.batch_size, self.size, self.batch_size):
            yield self.order[first : first + self.batch_size]

    def __len__(self) -> int:
        return batches_per_epoch(self.size, self.batch_size) - self.start


def batches_per_epoch(size: int, batch_size: int) -> int:
    return math.ceil(size / batch_size)


def fit(task: Task | CheckpointingTask, dataset: Dataset, plan: LoopPlan,
        collate: Callable | None = None) -> dict[str, float]:
    """Train until plan.train.epochs are done, resuming from plan.checkpoint_path when it exists."""
    size = len(dataset)  # type: ignore[arg-type]
    if size == 0:
        raise RunError(f"{plan.name}: no training examples")
    per_epoch = batches_per_epoch(size, plan.train.batch_size)
    epoch, batch_index, step = _resume(task, plan)
    if step == 0:
        torch.manual_seed(plan.seed)
    summary: dict[str, float] = {}
    while epoch < plan.train.epochs:
        sampler = EpochBatches(size, plan.train.batch_size, plan.seed, epoch, batch_index)
        # Its own generator, so creating the loader (worker seeds) leaves the global RNG alone.
        loader = DataLoader(
            dataset, batch_sampler=sampler, num_workers=plan.train.num_workers, collate_fn=collate,
            generator=torch.Generator().manual_seed(plan.seed + epoch),
        )
        sums: dict[str, float] = {}
        bar = tqdm(loader, desc=f"{plan.name} epoch {epoch + 1}/{plan.train.epochs}", leave=False, disable=not plan.progress)
        for batch in bar:
            losses = task.train_step(batch)
            _check_finite(losses, step, plan)
            step += 1
            batch_index += 1
            for key, value in losses.items():
                sums[key] = sums.get(key, 0.0) + value
            bar.set_postfix({k: f"{v:.4g}" for k, v in list(losses.items())[:3]})
            if plan.train.checkpoint_every and step % plan.train.checkpoint_every == 0 and batch_index < per_epoch:
                _save(task, plan, epoch, batch_index, step)
        count = max(1, batch_index - sampler.start)
        summary = {key: value / count for key, value in sums.items()}
        summary.update(task.end_epoch(epoch))
        epoch, batch_index = epoch + 1, 0
        _append_metrics(plan.metrics_path, {"epoch": epoch, "step": step, **summary})
        log.info("%s epoch %d/%d: %s", plan.name, epoch, plan.train.epochs, _format(summary))
        _save(task, plan, epoch, batch_index, step)
    return summary


def _resume(task: Task | CheckpointingTask, plan: LoopPlan) -> tuple[int, int, int]:
    if isinstance(task, CheckpointingTask):
        state = task.load_checkpoint(plan.checkpoint_path)
    else:
        state = _load_task_file(task, plan.checkpoint_path)
    if state is None:
        return 0, 0, 0
    if state.rng is not None:
        set_rng_state(state.rng)
    _drop_metrics_after(plan.metrics_path, state.epoch)
    log.info("%s: resuming from %s (epoch %d, step %d)", plan.name, plan.checkpoint_path, state.epoch + 1, state.step)
    return state.epoch, state.batch_in_epoch, state.step


def _load_task_file(task: Task, path: Path) -> LoopState | None:
    state = load_newest_checkpoint(path)
    if state is None:
        return None
    task.load_state_dict(state["task"])
    return LoopState(state["epoch"], state["batch_in_epoch"], state["step"], state["rng"])


def _save(task: Task | CheckpointingTask, plan: LoopPlan, epoch: int, batch_index: int, step: int) -> None:
    loop = LoopState(epoch, batch_index, step, rng_state())
    if isinstance(task, CheckpointingTask):
        task.save_checkpoint(plan.checkpoint_path, loop)
        return
    payload = {
        **plan.checkpoint_header,
        "task": task.state_dict(),
        "epoch": loop.epoch,
        "batch_in_epoch": loop.batch_in_epoch,
        "step": loop.step,
        "rng": loop.rng,
    }
    save_checkpoint(plan.checkpoint_path, payload, keep_previous=True)


def _check_finite(losses: dict[str, float], step: int, plan: LoopPlan) -> None:
    bad = [key for key, value in losses.items() if not math.isfinite(value)]
    if bad:
        last = plan.checkpoint_path if plan.checkpoint_path.exists() else "none yet"
        raise RunError(
            f"{plan.name}: non-finite {', '.join(bad)} at step {step + 1}; last good checkpoint: {last}. "
            "Lower the learning rate or check the data, then run again to resume."
        )


def _drop_metrics_after(path: Path, epoch: int) -> None:
    """Forget metric rows of epochs the checkpoint does not include (a kill after logging them)."""
    if not path.exists():
        return
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    kept = [row for row in rows if int(row["epoch"]) <= epoch]
    if len(kept) < len(rows):
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(kept)


def _append_metrics(path: Path, row: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    existing = path.exists() and path.stat().st_size > 0
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(row))
        if not existing:
            writer.writeheader()
        writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()})


def _format(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
