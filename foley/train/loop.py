"""The one training loop: epochs of reproducible batches, checkpoints, resume, metrics, stopping.

A trainer is described by a `Task`: it owns its modules and optimisers, performs one training
step on a batch and returns named losses, and says what to log at the end of an epoch. The loop
owns everything else: the batch order (foley.train.batches: a permutation drawn from (seed, epoch), so
a resumed run sees the same batches), atomic checkpoints (every `checkpoint_every` steps and at
each epoch's end; the one before is kept as `<name>.prev` and used when the newest turns out
corrupt), resuming from the last checkpoint, RNG state, non-finite loss detection, SIGINT/SIGTERM
(finish the step, checkpoint, raise `Interrupted`), a progress bar, and `metrics.csv` (one row
per epoch).

Data-parallel training (foley.util.distributed) goes through the same loop: each rank takes its slice
of every global batch of `batch_size` and the task scales its loss by the slice's
`gradient_scale`; the losses it reports are summed into global batch means together with the
ranks' stop requests (one collective per step), so every rank sees the same numbers and stops
after the same step. Only rank 0 writes files (the others wait for it); a checkpoint holds the
RNG state of every rank, so a resumed run continues exactly when it has as many processes.

By default the loop writes one foley checkpoint file holding the task's state and its own. A
`CheckpointingTask` instead keeps its checkpoints in files of its own format (e.g. HiFi-GAN's
official g_/do_ pairs) in the folder `plan.checkpoint_path`, and stores the loop's `LoopState`
in them; those files are then the whole resume state.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from foley.config import TrainConfig
from foley.train.batches import BatchShare, EpochBatches, batches_per_epoch
from foley.train.interrupt import StopRequests, agreed_signal
from foley.util import distributed
from foley.util.atomic import atomic_path
from foley.util.checkpoint import load_newest_checkpoint, rng_state, save_checkpoint, set_rng_state
from foley.util.errors import Interrupted, RunError

log = logging.getLogger(__name__)


class Task(Protocol):
    def train_step(self, batch: Any, share: BatchShare) -> dict[str, float]:
        """One optimisation step on this rank's slice of a global batch; returns named losses
        (means over the slice). The loss is multiplied by share.gradient_scale before backward."""

    def end_epoch(self, epoch: int) -> dict[str, float]:
        """Called after each epoch: scheduler steps, validation, extra metrics to log (global)."""

    def state_dict(self) -> dict[str, Any]:
        """Modules, optimisers and anything else a resumed run needs (tensors and plain types)."""

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class LoopState:
    """Where the loop stands: epochs finished, batches done in the current one, steps, RNG state
    (a list with one entry per rank; a single dict in older checkpoints; None: not saved, left as
    is) and the last finished epoch's metrics (what `fit` returns when nothing is left to train)."""

    epoch: int
    batch_in_epoch: int
    step: int
    rng: list[dict[str, Any]] | dict[str, Any] | None
    summary: dict[str, float] = field(default_factory=dict)


@runtime_checkable
class CheckpointingTask(Protocol):
    """A task that writes its checkpoints itself, in its own format, into a folder."""

    def train_step(self, batch: Any, share: BatchShare) -> dict[str, float]: ...

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
    pin_memory: bool = False  # batches in page-locked memory (host data for a CUDA device)


def fit(task: Task | CheckpointingTask, dataset: Dataset, plan: LoopPlan,
        collate: Callable | None = None) -> dict[str, float]:
    """Train until plan.train.epochs are done, resuming from plan.checkpoint_path when it exists;
    returns the last epoch's metrics. Raises Interrupted after checkpointing on SIGINT/SIGTERM."""
    size = len(dataset)  # type: ignore[arg-type]
    world = distributed.world_size()
    _check_sizes(size, plan, world)
    per_epoch = batches_per_epoch(size, plan.train.batch_size, world)
    loop = _resume(task, plan)
    if loop.step == 0:
        torch.manual_seed(plan.seed)
    with StopRequests() as requests:
        while loop.epoch < plan.train.epochs:
            batches = EpochBatches(size, plan.train.batch_size, plan.seed, loop.epoch, loop.batch_in_epoch, world)
            loop, sums, stop = _run_epoch(task, dataset, plan, batches, per_epoch, loop, requests, collate)
            if stop is not None and loop.batch_in_epoch < per_epoch:
                raise _interrupted(plan, stop, loop.step)
            summary = {key: value / max(1, len(batches)) for key, value in sums.items()}
            summary.update(task.end_epoch(loop.epoch))
            loop = dataclasses.replace(loop, epoch=loop.epoch + 1, batch_in_epoch=0, summary=summary)
            row = {"epoch": loop.epoch, "step": loop.step, **summary}
            distributed.on_main(lambda row=row: _append_metrics(plan.metrics_path, row))
            log.info("%s epoch %d/%d: %s", plan.name, loop.epoch, plan.train.epochs, _format(summary))
            _save(task, plan, loop)
            stop = stop or agreed_signal(distributed.summed_floats(requests.counts()))
            if stop is not None:
                raise _interrupted(plan, stop, loop.step)
    return loop.summary


def _run_epoch(task: Task | CheckpointingTask, dataset: Dataset, plan: LoopPlan, batches: EpochBatches,
               per_epoch: int, loop: LoopState, requests: StopRequests,
               collate: Callable | None) -> tuple[LoopState, dict[str, float], int | None]:
    """This rank's part of the epoch's remaining batches, until its end or an agreed stop;
    returns where the loop stands, the summed losses and the signal that stopped it (or None)."""
    local, shares = batches.shards(distributed.rank(), distributed.world_size())
    # Its own generator, so creating the loader (worker seeds) leaves the global RNG alone.
    loader = DataLoader(
        dataset, batch_sampler=local, num_workers=plan.train.num_workers, collate_fn=collate, pin_memory=plan.pin_memory,
        generator=torch.Generator().manual_seed(plan.seed + loop.epoch),
    )
    sums: dict[str, float] = {}
    stop = None
    bar = tqdm(loader, desc=f"{plan.name} epoch {loop.epoch + 1}/{plan.train.epochs}", leave=False, disable=not plan.progress)
    for batch, share in zip(bar, shares):
        losses, stop = _global_step(task, batch, share, requests)
        _check_finite(losses, loop.step, plan)
        loop = dataclasses.replace(loop, batch_in_epoch=loop.batch_in_epoch + 1, step=loop.step + 1)
        for key, value in losses.items():
            sums[key] = sums.get(key, 0.0) + value
        bar.set_postfix({k: f"{v:.4g}" for k, v in list(losses.items())[:3]})
        due = plan.train.checkpoint_every and loop.step % plan.train.checkpoint_every == 0
        if (due or stop is not None) and loop.batch_in_epoch < per_epoch:
            _save(task, plan, loop)
        if stop is not None:
            break
    return loop, sums, stop


def _global_step(task: Task | CheckpointingTask, batch: Any, share: BatchShare,
                 requests: StopRequests) -> tuple[dict[str, float], int | None]:
    """One step; its losses as global batch means and the signal all ranks stop for (or None)."""
    losses = task.train_step(batch, share)
    totals = distributed.summed_floats([value * share.weight for value in losses.values()] + requests.counts())
    return dict(zip(losses, totals)), agreed_signal(totals[len(losses):])


def _check_sizes(size: int, plan: LoopPlan, world: int) -> None:
    if size == 0:
        raise RunError(f"{plan.name}: no training examples")
    if world > min(size, plan.train.batch_size):
        raise RunError(
            f"{plan.name}: {world} processes need at least one example each per step, but batch_size is "
            f"{plan.train.batch_size} and there are {size} examples; use fewer processes or larger batches"
        )


def _interrupted(plan: LoopPlan, number: int, step: int) -> Interrupted:
    name = signal.Signals(number).name
    return Interrupted(f"{plan.name} stopped by {name} after step {step}; checkpoint written to '{plan.checkpoint_path}'", number)


def _resume(task: Task | CheckpointingTask, plan: LoopPlan) -> LoopState:
    if isinstance(task, CheckpointingTask):
        state = task.load_checkpoint(plan.checkpoint_path)
    else:
        state = _load_task_file(task, plan.checkpoint_path)
    if state is None:
        return LoopState(0, 0, 0, None)
    if state.rng is not None:
        set_rng_state(_rank_rng(state.rng))
    distributed.on_main(lambda: _drop_metrics_after(plan.metrics_path, state.epoch))
    log.info("%s: resuming from %s (epoch %d, step %d)", plan.name, plan.checkpoint_path, state.epoch + 1, state.step)
    return state


def _rank_rng(saved: list[dict[str, Any]] | dict[str, Any]) -> dict[str, Any]:
    """This rank's saved RNG state; with more ranks than were saved (a resume on more processes),
    the states repeat and the run goes on, no longer bit-exact."""
    if isinstance(saved, dict):
        return saved
    return saved[distributed.rank() % len(saved)]


def _load_task_file(task: Task, path: Path) -> LoopState | None:
    state = load_newest_checkpoint(path)
    if state is None:
        return None
    task.load_state_dict(state["task"])
    return LoopState(state["epoch"], state["batch_in_epoch"], state["step"], state["rng"], state.get("summary", {}))


def _save(task: Task | CheckpointingTask, plan: LoopPlan, loop: LoopState) -> None:
    """Gather every rank's RNG state, then rank 0 writes while the others wait for it."""
    loop = dataclasses.replace(loop, rng=distributed.gathered(rng_state()))
    distributed.on_main(lambda: _write_checkpoint(task, plan, loop))


def _write_checkpoint(task: Task | CheckpointingTask, plan: LoopPlan, loop: LoopState) -> None:
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
        "summary": loop.summary,
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
