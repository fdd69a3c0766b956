"""Clips -> embeddings: the Embedder interface, batched embedding with a content-keyed cache, a benchmark.

An Embedder is any object with
    name: str          names the model and its weights (e.g. "vggish-1a2b3c4d5e6f"); part of every
                       cache key and of every reported number, so different weights never share one
    sample_rate: int   the rate its windows are at (a protocol that fixes a rate must match it)
    dim: int           the size of one embedding
    window, hop: int   its natural window and hop in samples (the `standard` protocol's framing);
                       window 0: one embedding per whole clip
    embed(windows)     windows (N, S) float tensor, on the device to run on -> (N, dim) float tensor
                       on that device: one embedding per window, not depending on the rest of the
                       batch (beyond float rounding: float32 sums may differ with the batch size)
and the constructors the registry (foley.registry.EMBEDDERS) calls:
    load(weights, device)   weights: the path of its pretrained weights (None for weight-free ones)
    random(device, seed)    the same network with random weights (speed measurements)
The protocol (foley.evaluate.protocols) decides how a clip becomes windows; the embedder decides what
one window becomes. foley.models.vggish.VGGishEmbedder is one.

Embeddings are cached per clip under cache_dir/embeddings/<protocol key>/<embedder name>/, keyed
by the SHA-256 of the clip's file bytes (or of an in-memory clip's samples and rate), never by name.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol as Interface

import numpy as np
import torch
from tqdm import tqdm

from foley.evaluate.protocols import ClipArray, ClipSource, Framing, Protocol, clip_windows, describe, read_samples
from foley.util.atomic import save_npy_atomic
from foley.util.device import synchronize
from foley.util.errors import AudioError, DataError, FoleyError


class Embedder(Interface):
    name: str
    sample_rate: int
    dim: int
    window: int
    hop: int

    def embed(self, windows: torch.Tensor) -> torch.Tensor: ...

    @classmethod
    def load(cls, weights: Path | None, device: torch.device | str) -> Embedder: ...

    @classmethod
    def random(cls, device: torch.device | str, seed: int) -> Embedder: ...


def safe_name(name: str) -> str:
    """An embedder name as a folder name: characters other than letters, digits, '.', '_' and '-' become '_'."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def _source_bytes(source: ClipSource) -> bytes | None:
    return None if isinstance(source, ClipArray) else Path(source).read_bytes()


def content_key(source: ClipSource, data: bytes | None = None) -> str:
    """SHA-256 of a file's bytes, or of an in-memory clip's dtype, shape, rate and samples."""
    if isinstance(source, ClipArray):
        samples = np.ascontiguousarray(source.samples)
        header = f"{samples.dtype.str}{samples.shape}@{source.sample_rate}".encode()
        return hashlib.sha256(header + samples.tobytes()).hexdigest()
    return hashlib.sha256(_source_bytes(source) if data is None else data).hexdigest()


def content_keys(sources: Sequence[ClipSource]) -> list[str]:
    return [content_key(source) for source in sources]


@dataclass(frozen=True)
class EmbeddingCache:
    """One .npy of (windows, dim) float32 per clip, written atomically."""

    folder: Path

    @classmethod
    def at(cls, cache_dir: str | Path, embedder: Embedder, framing: Framing) -> EmbeddingCache:
        return cls(Path(cache_dir) / "embeddings" / framing.key / safe_name(embedder.name))

    def path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.npy"

    def load(self, key: str) -> np.ndarray | None:
        path = self.path(key)
        return np.load(path, allow_pickle=False) if path.is_file() else None

    def save(self, key: str, embeddings: np.ndarray) -> None:
        save_npy_atomic(self.path(key), embeddings.astype(np.float32))


def _run_embedder(embedder: Embedder, windows: np.ndarray, batch_size: int, device: torch.device) -> np.ndarray:
    out = [np.zeros((0, embedder.dim), dtype=np.float32)]
    for start in range(0, windows.shape[0], batch_size):
        batch = torch.from_numpy(windows[start : start + batch_size]).to(device)
        out.append(embedder.embed(batch).detach().to("cpu", torch.float32).numpy())
    return np.concatenate(out)


@dataclass(frozen=True)
class EmbedOptions:
    """How to run an embedder: windows per call, the device, the cache folder (None: no cache)."""

    batch_size: int = 64
    device: str = "cpu"
    cache_dir: Path | None = None
    progress: bool = False


def embed_clips(
    clips: Sequence[ClipSource], embedder: Embedder, protocol: Protocol, options: EmbedOptions = EmbedOptions()
) -> list[np.ndarray]:
    """Per-clip embeddings (windows, dim) float32, in the order of clips.

    Windows of several clips are batched together (options.batch_size per embedder call; whole-clip
    windows only with clips of the same length) on options.device. With a cache_dir, clips embedded
    before under the same protocol and embedder
    are read back instead.
    """
    framing = protocol.framing(embedder)
    batch_size = options.batch_size
    if batch_size < 1:
        raise FoleyError(f"batch_size must be at least 1, got {batch_size}")
    cache = EmbeddingCache.at(options.cache_dir, embedder, framing) if options.cache_dir is not None else None
    device = torch.device(options.device)
    results: list[np.ndarray | None] = [None] * len(clips)
    pending: list[tuple[int, str, np.ndarray]] = []

    def flush() -> None:
        if not pending:
            return
        embedded = _run_embedder(embedder, np.concatenate([w for _, _, w in pending]), batch_size, device)
        bounds = np.cumsum([w.shape[0] for _, _, w in pending])[:-1]
        for (index, key, _), part in zip(pending, np.split(embedded, bounds)):
            results[index] = part
            if cache is not None:
                cache.save(key, part)
        pending.clear()

    bar = tqdm(clips, desc=f"embed {embedder.name} / {protocol.name}", unit="clip", disable=not options.progress)
    for index, source in enumerate(bar):
        data = _source_bytes(source)
        key = content_key(source, data)
        cached = cache.load(key) if cache is not None else None
        if cached is not None:
            results[index] = cached
            continue
        try:
            windows = clip_windows(read_samples(source, framing, data), framing)
        except AudioError as err:
            raise AudioError(f"clip '{describe(source)}': {err}") from None
        if pending and pending[0][2].shape[1] != windows.shape[1]:
            flush()  # whole-clip windows of another length cannot share a batch
        pending.append((index, key, windows))
        if sum(w.shape[0] for _, _, w in pending) >= batch_size:
            flush()
    flush()
    return results


def embed_class(
    name: str, clips: Sequence[ClipSource], embedder: Embedder, protocol: Protocol, options: EmbedOptions = EmbedOptions()
) -> list[np.ndarray]:
    """embed_clips for one class's clips; DataError naming the class when they give fewer than the
    2 windows that FAD's and KAD's statistics need (e.g. clips shorter than one window under dcase2023)."""
    per_clip = embed_clips(clips, embedder, protocol, options)
    windows = sum(len(c) for c in per_clip)
    if windows >= 2:
        return per_clip
    framing = protocol.framing(embedder)
    where = f" ({Path(describe(clips[0])).parent})" if clips and not isinstance(clips[0], ClipArray) else ""
    if framing.pad_short or framing.window == 0:
        fix = "give the class at least 2 clips"
    else:
        fix = (f"under protocol {protocol.name} a clip shorter than one window ({framing.window:,} samples) gives none: "
               f"pad the clips to at least {framing.window:,} samples (foley's prepare stage pads every clip to the "
               f"config's clip length) or score with --protocol standard, which zero-pads a short clip to one window")
    raise DataError(f"class '{name}'{where}: its {len(clips)} clip(s) give {windows} embedding window(s) with "
                    f"{embedder.name}, and FAD and KAD need at least 2; {fix}")


BENCH_CLIP_SECONDS = 4


@dataclass(frozen=True)
class BenchResult:
    batch_size: int
    embeddings_per_second: float
    device: str
    seconds: float



def benchmark_embedder(
    embedder: Embedder,
    protocol: Protocol,
    batch_sizes: Sequence[int] = (1, 16, 64),
    device: torch.device | str = "cpu",
    repeats: int = 3,
    seed: int = 0,
) -> list[BenchResult]:
    """Embeddings per second at each batch size on device, for random windows of the protocol's length
    (a DCASE clip's 4 s where the protocol embeds whole clips).

    Each size is run once untimed (warm-up), then timed over repeats calls.
    """
    framing = protocol.framing(embedder)
    window = framing.window or BENCH_CLIP_SECONDS * framing.sample_rate
    device = torch.device(device)
    generator = torch.Generator().manual_seed(seed)
    results = []
    for size in batch_sizes:
        windows = (torch.rand(size, window, generator=generator, dtype=torch.float64) * 2 - 1).to(device)
        embedder.embed(windows)
        synchronize(device)
        start = time.perf_counter()
        for _ in range(repeats):
            embedder.embed(windows)
        synchronize(device)
        elapsed = time.perf_counter() - start
        results.append(BenchResult(size, size * repeats / elapsed, str(device), elapsed))
    return results
