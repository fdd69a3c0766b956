"""What every stage gets from the runner, and the tables stages hand to each other."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import torch

from foley.atomic import atomic_path
from foley.checkpoint import remove_checkpoint, save_checkpoint
from foley.distributed import on_main
from foley.errors import RunError


@dataclass(frozen=True)
class StageContext:
    run_dir: Path
    device: torch.device
    progress: bool = True

    def dir(self, stage: str) -> Path:
        return self.run_dir / stage


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


def write_trained_model(path: Path, payload: dict, resume_checkpoint: Path) -> None:
    """A trainer's last act: rank 0 writes the model file, then deletes the resume checkpoint (and
    the one kept before it); other ranks wait for it."""

    def write() -> None:
        save_checkpoint(path, payload)
        remove_checkpoint(resume_checkpoint)

    on_main(write)
