"""What every stage gets from the runner, and the tables stages hand to each other."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from foley.config import TrainConfig
from foley.train.loop import LoopPlan, Task, fit
from foley.util.atomic import atomic_path
from foley.util.checkpoint import checkpoint_header, model_payload, remove_checkpoint, save_checkpoint
from foley.util.distributed import on_main
from foley.util.errors import RunError


@dataclass(frozen=True)
class StageContext:
    run_dir: Path
    device: torch.device
    progress: bool = True
    cache_dir: Path | None = None  # content-keyed caches (embeddings, classifiers); None: <run>/cache

    def dir(self, stage: str) -> Path:
        return self.run_dir / stage

    @property
    def cache(self) -> Path:
        return self.cache_dir or self.run_dir / "cache"


INDEX_FIELDS = ("row", "path", "class_id", "class_name", "split", "conversions")


def write_csv(path: Path, fields: tuple[str, ...], rows: list[dict]) -> None:
    """Write a CSV atomically (temporary file + rename)."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(fields))
        writer.writeheader()
        writer.writerows(rows)


def read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise RunError(f"'{path}' is missing; run the stage that writes it first (foley run)")
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def read_index(ctx: StageContext) -> list[dict[str, str]]:
    """prepare's index.csv: one row per usable clip, with its mel row, class and split."""
    return read_csv(ctx.dir("prepare") / "index.csv")


def train_model(ctx: StageContext, stage: str, kind: str, spec: dict, model: torch.nn.Module, task: Task,
                dataset: Dataset, train: TrainConfig, seed: int, model_file: str) -> dict[str, float]:
    """Train `task` with the shared loop, resuming from the stage's checkpoint.pt, then (rank 0) write
    the model file `<stage>/<model_file>` and delete the resume checkpoint (and the one kept before
    it); other ranks wait for it. Returns the last epoch's metrics."""
    out = ctx.dir(stage)
    plan = LoopPlan(
        train=train,
        seed=seed,
        checkpoint_path=out / "checkpoint.pt",
        metrics_path=out / "metrics.csv",
        checkpoint_header=checkpoint_header(kind, spec),
        name=stage,
        progress=ctx.progress,
    )
    summary = fit(task, dataset, plan)

    def write() -> None:
        save_checkpoint(out / model_file, model_payload(kind, spec, model, metrics=summary))
        remove_checkpoint(plan.checkpoint_path)

    on_main(write)
    return summary
