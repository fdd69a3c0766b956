"""The official HiFi-GAN training folder's file names: g_<step> / do_<step> pairs and config.json.

Read by inference (the newest trained generator) and written by training (foley.vocoders.hifigan_training).
"""

from __future__ import annotations

import re
from pathlib import Path

CHECKPOINT_NAME = re.compile(r"^(g|do)_(\d{8})$")
CONFIG_NAME = "config.json"  # the official train.py keeps a copy of its config beside the checkpoints


def checkpoint_paths(directory: str | Path, steps: int) -> tuple[Path, Path]:
    return Path(directory) / f"g_{steps:08d}", Path(directory) / f"do_{steps:08d}"


def latest_checkpoint_steps(directory: str | Path) -> int | None:
    """The highest step with both g_ and do_ files in `directory`, or None."""
    steps = complete_checkpoint_steps(directory)
    return steps[-1] if steps else None


def complete_checkpoint_steps(directory: str | Path) -> list[int]:
    """The steps with both a g_ and a do_ file in `directory`, ascending."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found: dict[str, set[int]] = {"g": set(), "do": set()}
    for path in directory.iterdir():
        match = CHECKPOINT_NAME.match(path.name)
        if match:
            found[match.group(1)].add(int(match.group(2)))
    return sorted(found["g"] & found["do"])
