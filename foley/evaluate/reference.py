"""Reference statistics per class, from the official gt_embedding.pkl files, an .npz, or folders of clips.

Every set names how it was made (protocol, embedder, source) so that a FAD is only ever taken
between statistics made the same way. The official DCASE 2023 files were made with the TensorFlow
VGGish checkpoint under the dcase2023 protocol; torchvggish's weights are a port of that checkpoint
whose pre-ReLU embeddings match TensorFlow's almost exactly (torchvggish issue #24), so any
"vggish-..." embedder is accepted against them.

The .npz layout: <class>_mu (D,), <class>_sigma (D, D), <class>_count () for each class, and the
0-d strings protocol, embedder, source. Statistics of clips are cached under
cache_dir/stats/, keyed by protocol, embedder and the content hashes of the clips.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from foley.evaluate.embedding import Embedder, EmbedOptions, content_keys, embed_clips
from foley.evaluate.fad import GaussianStats, gaussian_stats
from foley.evaluate.gt_pickle import read_official_stats
from foley.evaluate.protocols import DCASE2023, ClipSource, Protocol, class_files, enforce_inputs
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


def _stats_cache_path(cache_dir: Path, keys: Sequence[str], embedder: Embedder, protocol: Protocol) -> Path:
    digest = hashlib.sha256("\n".join([protocol.framing(embedder).key, embedder.name, *sorted(keys)]).encode()).hexdigest()
    return cache_dir / "stats" / f"{digest}.npz"


def clips_stats(
    clips: Sequence[ClipSource],
    embedder: Embedder,
    protocol: Protocol,
    options: EmbedOptions = EmbedOptions(),
) -> GaussianStats:
    """Statistics of all windows of the clips; cached by their content, the embedder and the protocol."""
    cache_dir = options.cache_dir
    cached = _stats_cache_path(Path(cache_dir), content_keys(clips), embedder, protocol) if cache_dir else None
    if cached is not None and cached.is_file():
        with np.load(cached, allow_pickle=False) as data:
            return GaussianStats(data["mu"], data["sigma"], int(data["count"]))
    embeddings = embed_clips(clips, embedder, protocol, options)
    stats = gaussian_stats(np.concatenate(embeddings))
    if cached is not None:
        save_npz_atomic(cached, mu=stats.mu, sigma=stats.sigma, count=np.array(stats.count))
    return stats


def reference_from_folder(
    root: str | Path,
    class_names: Sequence[str],
    embedder: Embedder,
    protocol: Protocol,
    relax_checks: bool = False,
    options: EmbedOptions = EmbedOptions(),
) -> ReferenceStats:
    """Statistics of root/<class>/<audio files> per class; under dcase2023 the official input checks apply."""
    files = class_files(root, class_names)
    if protocol.official_checks:
        enforce_inputs(files, relax_checks)
    stats = {name: clips_stats(paths, embedder, protocol, options) for name, paths in files.items()}
    return ReferenceStats(stats, protocol.name, embedder.name, f"clips in {root}")


def load_reference(
    source: str | Path,
    class_names: Sequence[str],
    embedder: Embedder | None = None,
    protocol: Protocol | None = None,
    relax_checks: bool = False,
    options: EmbedOptions = EmbedOptions(),
) -> ReferenceStats:
    """Reference statistics from an .npz, a folder of <class>/gt_embedding.pkl, or a folder of <class>/<audio files>.

    Clips need the embedder and protocol, and are embedded with options.
    """
    source = Path(source)
    if source.is_file():
        return load_reference_npz(source, class_names)
    if not source.is_dir():
        raise DataError(f"reference '{source}' does not exist (give an .npz, or a folder with one folder per class)")
    if any((source / name / OFFICIAL_FILE).is_file() for name in class_names):
        return read_official_reference(source, class_names)
    if embedder is None or protocol is None:
        raise FoleyError(f"reference '{source}' holds clips: computing their statistics needs an embedder and a protocol")
    return reference_from_folder(source, class_names, embedder, protocol, relax_checks, options)


def reference_digest(source: str | Path, class_names: Sequence[str]) -> str:
    """A short content hash naming a reference: of the .npz file, of the classes' official pickles,
    or of every class's clip contents (names and paths do not enter it)."""
    source = Path(source)
    digest = hashlib.sha256()
    if source.is_file():
        digest.update(source.read_bytes())
    elif any((source / name / OFFICIAL_FILE).is_file() for name in class_names):
        for name in class_names:
            digest.update(name.encode() + b"\0" + (source / name / OFFICIAL_FILE).read_bytes())
    else:
        for name, files in class_files(source, class_names).items():
            digest.update("\n".join([name, *sorted(content_keys(files))]).encode() + b"\0")
    return digest.hexdigest()[:12]
