"""Folders of clips in the DCASE layouts: one sub-folder of .wav files per class.

The development layout names classes DogBark, Footstep, ...; the evaluation layout dog_bark,
footstep, ...; both map to class ids in the order the config lists them.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from foley.util.errors import DataError

AUDIO_SUFFIXES = (".wav",)


@dataclass(frozen=True)
class Entry:
    path: Path
    class_id: int
    split: str  # "train", "val" or "reference"


def index_folder(root: str | Path, class_folders: Sequence[str], split: str) -> list[Entry]:
    """Every clip under root/<class_folders[i]>/ as an Entry of class i, sorted by path."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(
            f"data folder '{root}' does not exist; it must hold one folder per class: {', '.join(class_folders)}"
        )
    missing = [name for name in class_folders if not (root / name).is_dir()]
    if missing:
        found = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise DataError(
            f"data folder '{root}' lacks class folder(s) {', '.join(missing)} (found: {', '.join(found) or 'none'}); "
            "check data.class_names / data.eval_class_names or the folder"
        )
    entries = []
    for class_id, name in enumerate(class_folders):
        files = sorted(
            p for p in (root / name).iterdir() if p.suffix.lower() in AUDIO_SUFFIXES and not p.name.startswith(".")
        )
        if not files:
            raise DataError(f"class folder '{root / name}' holds no .wav files")
        entries += [Entry(path=p, class_id=class_id, split=split) for p in files]
    return entries


def hold_out_validation(entries: list[Entry], fraction: float, seed: int) -> list[Entry]:
    """Mark round(fraction * n) clips of each class as "val" (at least one when fraction > 0)."""
    if fraction <= 0:
        return entries
    by_class: dict[int, list[int]] = {}
    for i, entry in enumerate(entries):
        by_class.setdefault(entry.class_id, []).append(i)
    chosen: set[int] = set()
    for class_id, indices in sorted(by_class.items()):
        count = min(len(indices) - 1, max(1, round(fraction * len(indices))))
        chosen.update(random.Random(f"{seed}/{class_id}").sample(indices, count))
    return [replace(e, split="val") if i in chosen else e for i, e in enumerate(entries)]
