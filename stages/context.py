"""What every stage gets from the runner, and the tables stages hand to each other."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from foley.config import TrainConfig
from foley.stages.manifest import stage_details
from foley.stages.stage import Stage
from foley.train.data import TrainingData
from foley.train.loop import LoopPlan, Task, fit
from foley.util.checkpoint import checkpoint_header, model_payload, remove_checkpoint, save_checkpoint
from foley.util.distributed import on_main
from foley.util.errors import RunError


@dataclass(frozen=True)
class StageContext:
    """The running stage's place: its run folder, device, and the declarations it may read through."""

    run_dir: Path
    device: torch.device
    progress: bool = True
    stage: Stage | None = None  # the stage being run (set by the runner)
    upstream: Mapping[str, Stage] = field(default_factory=dict)  # its declared upstream stages
    cache_dir: Path | None = None  # content-keyed caches (embeddings, classifiers); None: <run>/cache

    @property
    def out(self) -> Path:
        """The running stage's own folder."""
        return self.run_dir / self._stage().name

    def input(self, stage: str, output: str | None = None) -> Path:
        """A declared output of a declared upstream stage (its folder when `output` is None)."""
        if stage not in self.upstream:
            raise RunError(f"stage {self._stage().name} reads from {stage}, which is not among its declared "
                           f"upstream stages ({', '.join(self.upstream) or 'none'})")
        if output is not None and output not in self.upstream[stage].outputs:
            raise RunError(f"stage {self._stage().name} reads {stage}/{output}, which {stage} does not declare "
                           f"among its outputs ({', '.join(self.upstream[stage].outputs) or 'none'})")
        folder = self.run_dir / stage
        return folder if output is None else folder / output

    def details(self, stage: str) -> dict[str, Any]:
        """The details a declared upstream stage recorded in its manifest (e.g. extract_codes' codebook size)."""
        return stage_details(self.input(stage))

    def _stage(self) -> Stage:
        if self.stage is None:
            raise RunError("no stage is running in this context")
        return self.stage

    @property
    def cache(self) -> Path:
        """Where content-keyed caches live: the run's cache/, or the one a group of seed runs shares."""
        return self.cache_dir or self.run_dir / "cache"


INDEX_FIELDS = ("row", "path", "offset", "class_id", "class_name", "split", "conversions", "notes")


def read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise RunError(f"'{path}' is missing; run the stage that writes it first (foley run)")
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def read_index(ctx: StageContext) -> list[dict[str, str]]:
    """prepare's index.csv: one row per usable clip, with its mel row, source file and offset, class and split."""
    return read_csv(ctx.input("prepare", "index.csv"))


def train_model(ctx: StageContext, kind: str, spec: dict, model: torch.nn.Module, task: Task,
                data: TrainingData, train: TrainConfig, seed: int, model_file: str) -> dict[str, float]:
    """Train `task` with the shared loop, resuming from the stage's checkpoint.pt, then (rank 0) write
    the model file `<stage>/<model_file>` and delete the resume checkpoint (and the one kept before
    it); other ranks wait for it. Returns the last epoch's metrics."""
    out = ctx.out
    plan = LoopPlan(
        train=train,
        seed=seed,
        checkpoint_path=out / "checkpoint.pt",
        metrics_path=out / "metrics.csv",
        checkpoint_header=checkpoint_header(kind, spec),
        name=ctx.out.name,
        progress=ctx.progress,
        pin_memory=data.pin_memory,
    )
    summary = fit(task, data.dataset, plan, data.collate)

    def write() -> None:
        save_checkpoint(out / model_file, model_payload(kind, spec, model, metrics=summary))
        remove_checkpoint(plan.checkpoint_path)

    on_main(write)
    return summary
