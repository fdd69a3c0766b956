"""Read every clip once through the audio policy and store all log-mels in one .npy array.

Clips that cannot be used are rejected with their reason, never allowed to stop the whole set;
conversions (channels, rate, length) are recorded per clip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from foley.audio.clips import log_mel, read_clip
from foley.config import AudioConfig, MelConfig
from foley.data.layout import Entry
from foley.util import shapes
from foley.util.atomic import save_npy_atomic
from foley.util.errors import AudioError

READ_CHUNK = 256


@dataclass(frozen=True)
class Prepared:
    entry: Entry
    row: int  # row of its mel in the cache
    conversions: tuple[str, ...]


@dataclass(frozen=True)
class Rejected:
    entry: Entry
    reason: str


def build_mel_cache(
    entries: Sequence[Entry],
    audio: AudioConfig,
    mel: MelConfig,
    out_path: Path,
    device: torch.device,
    batch_size: int = 64,
    progress: bool = True,
) -> tuple[list[Prepared], list[Rejected]]:
    """Write mels (N_accepted, n_mels, frames) float32 to out_path atomically."""
    frames = shapes.mel_frames(audio.clip_samples, mel.n_fft, mel.hop_length)
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    store = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(max(1, len(entries)), mel.n_mels, frames))
    prepared: list[Prepared] = []
    rejected: list[Rejected] = []
    pending: list[np.ndarray] = []
    for entry, outcome in tqdm(_read_all(entries, audio), total=len(entries), desc="prepare", disable=not progress):
        if isinstance(outcome, str):
            rejected.append(Rejected(entry, outcome))
            continue
        prepared.append(Prepared(entry, len(prepared), outcome.conversions))
        pending.append(outcome.audio)
        if len(pending) == batch_size:
            _store_mels(store, len(prepared) - len(pending), pending, mel, audio.sample_rate, device)
    _store_mels(store, len(prepared) - len(pending), pending, mel, audio.sample_rate, device)
    store.flush()
    del store
    _finalise(tmp, out_path, len(prepared))
    return prepared, rejected


def _store_mels(store: np.ndarray, first: int, pending: list[np.ndarray], mel: MelConfig, sample_rate: int,
                device: torch.device) -> None:
    """Log-mels of the pending clips into store[first:], in one batch; empties `pending`."""
    if pending:
        batch = torch.from_numpy(np.stack(pending)).to(device)
        store[first : first + len(pending)] = log_mel(batch, mel, sample_rate).cpu().numpy()
        pending.clear()


def _read_all(entries: Sequence[Entry], audio: AudioConfig) -> Iterator[tuple[Entry, object]]:
    def read(entry: Entry):
        try:
            return entry, read_clip(entry.path, audio.sample_rate, audio.clip_samples)
        except AudioError as err:
            return entry, str(err)

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        for first in range(0, len(entries), READ_CHUNK):  # bounded read-ahead
            yield from pool.map(read, entries[first : first + READ_CHUNK])


def _finalise(tmp: Path, out_path: Path, rows: int) -> None:
    """Move the temporary array into place, keeping only its first `rows` rows (the accepted clips)."""
    full = np.load(tmp, mmap_mode="r")
    if rows == full.shape[0]:
        del full
        os.replace(tmp, out_path)
        return
    save_npy_atomic(out_path, full[:rows])
    del full
    tmp.unlink()
