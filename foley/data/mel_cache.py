"""Read every file once through the clip policy and stream all log-mels into one .npy array.

Files are decoded in worker processes (foley.data.ingest) and come back in order; their clips'
log-mels are computed in batches on the device and appended to the array on disk, so memory holds
one batch and a few files in flight, never the set. Every file ends in exactly one place: its clips
(Prepared rows), rejected with the reason, or skipped as an exact duplicate of a file met earlier
(callers list the reference files first, so a recording in both folders stays in the reference).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from foley.audio.clips import ClipPolicy
from foley.audio.mel import log_mel
from foley.config import MelConfig
from foley.data.ingest import Rejected, ingest_all
from foley.data.layout import Entry, Excluded
from foley.util import shapes
from foley.util.atomic import NpyRows, npy_rows_atomic


@dataclass(frozen=True)
class Prepared:
    entry: Entry
    row: int  # row of its mel in the cache
    offset: int  # first sample of the clip in its converted recording
    conversions: tuple[str, ...]
    notes: tuple[str, ...]


@dataclass
class CacheResult:
    prepared: list[Prepared] = field(default_factory=list)
    rejected: list[Excluded] = field(default_factory=list)
    duplicates: list[Excluded] = field(default_factory=list)

    @property
    def files_used(self) -> int:
        return len({p.entry.path for p in self.prepared})


@dataclass
class _MelBatch:
    """Clips waiting for their log-mels; flushed into the array every batch_size clips."""

    store: NpyRows
    mel: MelConfig
    sample_rate: int
    device: torch.device
    batch_size: int
    pending: list[np.ndarray] = field(default_factory=list)

    def add(self, audio: np.ndarray) -> None:
        self.pending.append(audio)
        if len(self.pending) == self.batch_size:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            batch = torch.from_numpy(np.stack(self.pending)).to(self.device)
            self.store.append(log_mel(batch, self.mel, self.sample_rate).cpu().numpy())
            self.pending.clear()


def build_mel_cache(
    entries: Sequence[Entry],
    policy: ClipPolicy,
    mel: MelConfig,
    out_path: Path,
    device: torch.device,
    workers: int = 0,
    batch_size: int = 16,
    progress: bool = True,
) -> CacheResult:
    """Write the mels (clips, n_mels, frames) float32 of every usable clip to out_path, atomically.

    batch_size clips per log-mel call: the STFT's transient memory grows with it (~5 MB per 4 s clip).
    """
    frames = shapes.mel_frames(policy.clip_samples, mel.n_fft, mel.hop_length)
    result, first_seen = CacheResult(), {}
    with npy_rows_atomic(out_path, (mel.n_mels, frames)) as store:
        batch = _MelBatch(store, mel, policy.sample_rate, device, batch_size)
        outcomes = ingest_all(entries, policy, workers)
        for entry, outcome in tqdm(outcomes, total=len(entries), desc="prepare", unit="file", disable=not progress):
            if isinstance(outcome, Rejected):
                result.rejected.append(Excluded(entry, outcome.reason))
                continue
            original = first_seen.setdefault(outcome.digest, entry.path)
            if original != entry.path:
                result.duplicates.append(Excluded(entry, f"duplicate: the same bytes as {original}, used there"))
                continue
            for clip in outcome.clips:
                result.prepared.append(Prepared(entry, len(result.prepared), clip.offset, clip.conversions, outcome.notes))
                batch.add(clip.audio)
        batch.flush()
    return result
