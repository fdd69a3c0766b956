"""Folders of clips in the DCASE layouts: one sub-folder of audio files per class.

The development layout names classes DogBark, Footstep, ...; the evaluation layout dog_bark,
footstep, ...; both map to class ids in the order the config lists them. Every entry of a class
folder is either an audio file to read (an Entry) or skipped with its reason; folders and files
beside the class folders are named, not read.
"""

from __future__ import annotations

import difflib
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from foley.audio.formats import list_folder
from foley.util.errors import DataError


@dataclass(frozen=True)
class Entry:
    path: Path
    class_id: int
    split: str  # "train", "val" or "reference"


@dataclass(frozen=True)
class Excluded:
    """A class-folder entry that gives no clip (rejected or skipped), and why."""

    entry: Entry
    reason: str


@dataclass(frozen=True)
class FolderScan:
    """A layout folder: the audio files of its class folders, the entries skipped, and what matched no class."""

    root: Path
    class_folders: tuple[str, ...]
    split: str
    entries: tuple[Entry, ...]
    skipped: tuple[Excluded, ...]
    unmatched: tuple[str, ...]  # "<name>/" for folders, "<name>" for files beside the class folders

    def unmatched_warning(self) -> str | None:
        """One line naming what lies beside the class folders, with the nearest class names."""
        if not self.unmatched:
            return None
        named = []
        for name in self.unmatched:
            near = difflib.get_close_matches(name.rstrip("/"), self.class_folders, n=1)
            named.append(f"{name} (did you mean {near[0]}?)" if near else name)
        return (f"'{self.root}': {', '.join(named)} match(es) no class folder ({', '.join(self.class_folders)}) "
                "and are not read")


def scan_folder(root: str | Path, class_folders: Sequence[str], split: str) -> FolderScan:
    """Every entry of root/<class_folders[i]>/ as an Entry of class i (audio) or an Excluded (skipped), by name."""
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
    entries, skipped = [], []
    for class_id, name in enumerate(class_folders):
        listing = list_folder(root / name)
        entries += [Entry(path, class_id, split) for path in listing.audio]
        skipped += [Excluded(Entry(s.path, class_id, split), s.reason) for s in listing.skipped]
    unmatched = tuple(
        f"{p.name}/" if p.is_dir() else p.name
        for p in sorted(root.iterdir())
        if p.name not in class_folders and not p.name.startswith(".")
    )
    return FolderScan(root, tuple(class_folders), split, tuple(entries), tuple(skipped), unmatched)


def hold_out_validation(entries: Sequence[Entry], fraction: float, seed: int) -> list[Entry]:
    """Mark round(fraction * n) files of each class as "val" (at least one when fraction > 0).

    The split is per file: every clip cut from one file lands on the file's side.
    """
    if fraction <= 0:
        return list(entries)
    by_class: dict[int, list[int]] = {}
    for i, entry in enumerate(entries):
        by_class.setdefault(entry.class_id, []).append(i)
    chosen: set[int] = set()
    for class_id, indices in sorted(by_class.items()):
        count = min(len(indices) - 1, max(1, round(fraction * len(indices))))
        chosen.update(random.Random(f"{seed}/{class_id}").sample(indices, count))
    return [replace(e, split="val") if i in chosen else e for i, e in enumerate(entries)]
