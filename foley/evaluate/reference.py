"""Reference statistics per class, from the official gt_embedding.pkl files, an .npz, folders of clips,
or a folder of saved embeddings (foley.evaluate.saved).

Every set names how it was made (protocol, embedder, source) so that a FAD is only ever taken
between statistics made the same way. The official DCASE 2023 files were made with the TensorFlow
VGGish checkpoint under the dcase2023 protocol; torchvggish's weights are a port of that checkpoint
whose pre-ReLU embeddings match TensorFlow's almost exactly (torchvggish issue #24), so any
"vggish-..." embedder is accepted against them.

The .npz layout: <class>_mu (D,), <class>_sigma (D, D), <class>_count () for each class, and the
0-d strings protocol, embedder, source. References made from clips (their embeddings cached per clip
under cache_dir, keyed by content, embedder and framing) or from saved embeddings also carry the
embeddings themselves, which KAD needs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from foley.evaluate.embedding import Embedder, EmbedOptions, content_keys, embed_class
from foley.evaluate.fad import GaussianStats, gaussian_stats
from foley.evaluate.gt_pickle import read_official_stats
from foley.evaluate.protocols import DCASE2023, Protocol, class_files, enforce_inputs
from foley.evaluate.saved import STATS_FILE, is_saved_folder, load_embeddings, read_manifest
from foley.util.atomic import save_npz_atomic
from foley.util.errors import DataError, FoleyError

OFFICIAL_FILE = "gt_embedding.pkl"
OFFICIAL_EMBEDDER = "vggish-tf-official"
METADATA = ("protocol", "embedder", "source")


@dataclass(frozen=True)
class ReferenceStats:
    stats: dict[str, GaussianStats]
    protocol: str
    embedder: str
    source: str
    embeddings: dict[str, np.ndarray] | None = None  # class -> (rows, D); None: statistics only


def _family(embedder_name: str) -> str:
    return embedder_name.split("-", 1)[0]


def require_compatible(reference: ReferenceStats, protocol: Protocol, embedder: Embedder) -> None:
    """FoleyError unless the reference was made under the same protocol with the same kind of embedder."""
    if reference.protocol != protocol.name or _family(reference.embedder) != _family(embedder.name):
        raise FoleyError(
            f"reference statistics from {reference.source} were made with protocol {reference.protocol} and "
            f"embedder {reference.embedder}; they cannot be compared with {protocol.name} / {embedder.name}"
        )


def read_official_reference(root: str | Path, class_names: Sequence[str]) -> ReferenceStats:
    """root/<class>/gt_embedding.pkl for each class (the evaluator's data/eval layout)."""
    root = Path(root)
    missing = [name for name in class_names if not (root / name / OFFICIAL_FILE).is_file()]
    if missing:
        raise DataError(f"'{root}' lacks {OFFICIAL_FILE} for class(es) {', '.join(missing)}")
    stats = {name: read_official_stats(root / name / OFFICIAL_FILE) for name in class_names}
    return ReferenceStats(stats, DCASE2023.name, OFFICIAL_EMBEDDER, f"official {OFFICIAL_FILE} files in {root}")


def save_reference_npz(path: str | Path, reference: ReferenceStats) -> None:
    arrays: dict[str, np.ndarray] = {}
    for name, stats in reference.stats.items():
        arrays.update({f"{name}_mu": stats.mu, f"{name}_sigma": stats.sigma, f"{name}_count": np.array(stats.count)})
    arrays.update({key: np.array(getattr(reference, key)) for key in METADATA})
    save_npz_atomic(path, **arrays)


def load_reference_npz(path: str | Path, class_names: Sequence[str]) -> ReferenceStats:
    """Statistics of class_names from an .npz; metadata missing from the file reads as 'unspecified'."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read reference statistics '{path}' ({err})") from None
    missing = [n for n in class_names if f"{n}_mu" not in arrays or f"{n}_sigma" not in arrays]
    if missing:
        raise DataError(f"'{path}' has no <class>_mu / <class>_sigma for class(es) {', '.join(missing)}")
    stats = {}
    for name in class_names:
        count = int(arrays[f"{name}_count"]) if f"{name}_count" in arrays else 0
        stats[name] = GaussianStats(arrays[f"{name}_mu"].astype(np.float64), arrays[f"{name}_sigma"].astype(np.float64), count)
    meta = {key: str(arrays[key]) if key in arrays else "unspecified" for key in METADATA}
    meta["source"] = f"{path} ({meta['source']})"
    return ReferenceStats(stats, **meta)


def reference_from_folder(
    root: str | Path,
    class_names: Sequence[str],
    embedder: Embedder,
    protocol: Protocol,
    relax_checks: bool = False,
    options: EmbedOptions | None = None,
) -> ReferenceStats:
    """Embeddings and statistics of root/<class>/<audio files> per class (embeddings cached per clip with
    options.cache_dir); under dcase2023 the official input checks apply."""
    files = class_files(root, class_names)
    if protocol.official_checks:
        enforce_inputs(files, relax_checks)
    embeddings = {name: np.concatenate(embed_class(name, paths, embedder, protocol, options or EmbedOptions()))
                  for name, paths in files.items()}
    stats = {name: gaussian_stats(rows) for name, rows in embeddings.items()}
    return ReferenceStats(stats, protocol.name, embedder.name, f"clips in {root}", embeddings)


def reference_from_saved(
    root: str | Path, class_names: Sequence[str], embedder: Embedder | None = None, protocol: Protocol | None = None
) -> ReferenceStats:
    """The reference part of a saved-embeddings folder: its reference.npy rows (or, when it holds
    statistics only, its reference_stats.npz); DataError when made with another embedder or framing."""
    root = Path(root)
    saved = load_embeddings(root, class_names)
    source = saved.source
    if embedder is not None and protocol is not None:
        framing = protocol.framing(embedder).key
        if (source.embedder, source.framing) != (embedder.name, framing):
            raise DataError(f"saved embeddings '{root}' were made with embedder {source.embedder} ({source.framing}); "
                            f"this evaluation uses {embedder.name} ({framing})")
    description = f"saved embeddings in {root} (of {source.reference})"
    if saved.reference is None:
        stats = load_reference_npz(root / STATS_FILE, class_names).stats
        return ReferenceStats(stats, source.protocol, source.embedder, description)
    rows = {name: saved.reference[name].astype(np.float64) for name in class_names}
    return ReferenceStats({n: gaussian_stats(r) for n, r in rows.items()}, source.protocol, source.embedder, description,
                          rows)


def save_reference_stats(folder: str | Path, reference: ReferenceStats) -> None:
    """The statistics beside saved embeddings whose reference holds no embeddings (reference_stats.npz), so
    that FADs re-score from the folder."""
    save_reference_npz(Path(folder) / STATS_FILE, reference)


def load_reference(
    source: str | Path,
    class_names: Sequence[str],
    embedder: Embedder | None = None,
    protocol: Protocol | None = None,
    relax_checks: bool = False,
    options: EmbedOptions | None = None,
) -> ReferenceStats:
    """Reference statistics from an .npz, a folder of <class>/gt_embedding.pkl, a folder of saved
    embeddings, or a folder of <class>/<audio files>.

    Clips need the embedder and protocol, and are embedded with options.
    """
    source = Path(source)
    if source.is_file():
        return load_reference_npz(source, class_names)
    if not source.is_dir():
        raise DataError(f"reference '{source}' does not exist (give an .npz, or a folder with one folder per class)")
    if is_saved_folder(source):
        return reference_from_saved(source, class_names, embedder, protocol)
    if any((source / name / OFFICIAL_FILE).is_file() for name in class_names):
        return read_official_reference(source, class_names)
    if embedder is None or protocol is None:
        raise FoleyError(f"reference '{source}' holds clips: computing their statistics needs an embedder and a protocol")
    return reference_from_folder(source, class_names, embedder, protocol, relax_checks, options)


def holds_embeddings(source: str | Path) -> bool:
    """Whether a reference gives embeddings (KAD needs them): a folder of clips, or saved embeddings that
    include the reference's; not an .npz or official gt_embedding.pkl files (statistics only)."""
    source = Path(source)
    if source.is_file():
        return False
    if is_saved_folder(source):
        return bool(read_manifest(source)["has_reference"])
    return not any(source.glob(f"*/{OFFICIAL_FILE}"))


def reference_digest(source: str | Path, class_names: Sequence[str]) -> str:
    """A short content hash naming a reference: of the .npz file, of the classes' official pickles,
    or of every class's clip contents (names and paths do not enter it); a saved-embeddings folder
    keeps the id of the reference it was made from."""
    source = Path(source)
    digest = hashlib.sha256()
    if source.is_dir() and is_saved_folder(source):
        return read_manifest(source)["reference_id"]
    if source.is_file():
        digest.update(source.read_bytes())
    elif any((source / name / OFFICIAL_FILE).is_file() for name in class_names):
        for name in class_names:
            digest.update(name.encode() + b"\0" + (source / name / OFFICIAL_FILE).read_bytes())
    else:
        for name, files in class_files(source, class_names).items():
            digest.update("\n".join([name, *sorted(content_keys(files))]).encode() + b"\0")
    return digest.hexdigest()[:12]
