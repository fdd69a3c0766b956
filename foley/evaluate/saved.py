"""Embeddings out and in: a folder that other tools (and foley again) can read.

    DIR/<class>/generated.npy   float32 (rows, dim): every generated embedding scored, clip after clip
    DIR/<class>/reference.npy   float32 (rows, dim): the reference's embeddings (absent when the reference
                                came as statistics only: official gt_embedding.pkl files or an .npz)
    DIR/reference_stats.npz     only when the reference came as statistics: the statistics every FAD was
                                taken against (the .npz layout of foley.evaluate.reference), so FADs
                                re-score from the folder
    DIR/embeddings.json         how they were made: format, embedder (name, description), protocol and
                                framing key, dimension, reference (description, content id) and, per
                                class, each generated clip's file name and number of rows
A folder like this is accepted as a reference (`--reference DIR`, evaluate.reference) and read by
`foley compare` for its paired tests.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from foley.util.atomic import save_npy_atomic, write_text_atomic
from foley.util.errors import DataError

FORMAT = 1
MANIFEST = "embeddings.json"
STATS_FILE = "reference_stats.npz"


@dataclass(frozen=True)
class EmbeddingSource:
    """How a set of embeddings was made: named in the manifest and checked when they are read back."""

    embedder: str
    description: str
    protocol: str
    framing: str  # the framing's key: protocol settings digest
    dim: int
    reference: str
    reference_id: str


@dataclass(frozen=True)
class SavedEmbeddings:
    source: EmbeddingSource
    generated: dict[str, list[np.ndarray]]  # class -> per clip (rows, dim) float32
    generated_names: dict[str, list[str]]
    reference: dict[str, np.ndarray] | None  # class -> (rows, dim) float32

    def clips(self) -> dict[str, int]:
        return {name: len(clips) for name, clips in self.generated.items()}


def is_saved_folder(path: str | Path) -> bool:
    return (Path(path) / MANIFEST).is_file()


def save_embeddings(
    folder: str | Path,
    source: EmbeddingSource,
    generated: Mapping[str, Sequence[np.ndarray]],
    generated_names: Mapping[str, Sequence[str]],
    reference: Mapping[str, np.ndarray] | None,
) -> None:
    """Write the folder (class folders first, the manifest last: a folder with a manifest is complete)."""
    folder = Path(folder)
    classes = {}
    for name, clips in generated.items():
        rows = [np.asarray(c, dtype=np.float32).reshape(-1, source.dim) for c in clips]
        save_npy_atomic(folder / name / "generated.npy", np.concatenate(rows) if rows else np.zeros((0, source.dim), np.float32))
        if reference is not None:
            save_npy_atomic(folder / name / "reference.npy", np.asarray(reference[name], dtype=np.float32))
        classes[name] = {"generated": [[str(n), len(r)] for n, r in zip(generated_names[name], rows)]}
    manifest = {"format": FORMAT, **source.__dict__, "has_reference": reference is not None, "classes": classes}
    write_text_atomic(folder / MANIFEST, json.dumps(manifest, indent=1) + "\n")


def read_manifest(folder: Path) -> dict:
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read '{folder / MANIFEST}' ({err})") from None
    if manifest.get("format") != FORMAT:
        raise DataError(f"'{folder / MANIFEST}' is format {manifest.get('format')}; this foley reads format {FORMAT}")
    return manifest


def _rows(path: Path, dim: int) -> np.ndarray:
    try:
        rows = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read saved embeddings '{path}' ({err})") from None
    if rows.ndim != 2 or rows.shape[1] != dim:
        raise DataError(f"'{path}' holds an array of shape {rows.shape}; expected (rows, {dim})")
    return rows


def load_embeddings(folder: str | Path, class_names: Sequence[str]) -> SavedEmbeddings:
    """The saved embeddings of class_names, checked against the manifest (DataError names what is wrong)."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    missing = [name for name in class_names if name not in manifest["classes"]]
    if missing:
        raise DataError(f"saved embeddings '{folder}' have no class(es) {', '.join(missing)}; "
                        f"they hold {', '.join(manifest['classes'])}")
    source = EmbeddingSource(**{key: manifest[key] for key in EmbeddingSource.__dataclass_fields__})
    generated, names = {}, {}
    for name in class_names:
        clips = manifest["classes"][name]["generated"]
        rows = _rows(folder / name / "generated.npy", source.dim)
        sizes = [int(count) for _, count in clips]
        if sum(sizes) != rows.shape[0]:
            raise DataError(f"'{folder / name / 'generated.npy'}' holds {rows.shape[0]} rows; {MANIFEST} lists {sum(sizes)}")
        generated[name] = np.split(rows, np.cumsum(sizes)[:-1]) if sizes else []
        names[name] = [str(clip) for clip, _ in clips]
    reference = None
    if manifest["has_reference"]:
        reference = {name: _rows(folder / name / "reference.npy", source.dim) for name in class_names}
    return SavedEmbeddings(source, generated, names, reference)
