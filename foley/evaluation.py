"""Per-class FAD of generated clips against real reference clips, with a given embedder.

Clips are read through the audio policy, embedded in batches, and summarised per class by a
Gaussian; the full generated-class x reference-class matrix shows whether classes come out apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm import tqdm

from foley.audio import read_clip
from foley.config import AudioConfig
from foley.embedders import BuiltinEmbedder
from foley.fad import GaussianStats, frechet_distance, gaussian_stats


@dataclass(frozen=True)
class ClassScores:
    """FAD per class (diagonal of `matrix`) plus the cross-class matrix [generated, reference]."""

    class_names: tuple[str, ...]
    matrix: np.ndarray
    n_generated: tuple[int, ...]
    n_reference: tuple[int, ...]

    @property
    def fad(self) -> np.ndarray:
        return np.diag(self.matrix)

    @property
    def mean(self) -> float:
        return float(self.fad.mean())


@torch.no_grad()
def embed_files(
    paths: Sequence[Path], embedder: BuiltinEmbedder, audio: AudioConfig, batch_size: int,
    device: torch.device, progress: bool = False, desc: str = "embedding",
) -> np.ndarray:
    """All windows' embeddings of the clips, stacked: (clips * windows, dim) float64."""
    out = []
    for first in tqdm(range(0, len(paths), batch_size), desc=desc, disable=not progress, leave=False):
        clips = [read_clip(p, audio.sample_rate, audio.clip_samples).audio for p in paths[first : first + batch_size]]
        batch = torch.from_numpy(np.stack(clips)).to(device)
        out.append(embedder.embed(batch).reshape(-1, embedder.dim).double().cpu().numpy())
    return np.concatenate(out)


def score_classes(
    class_names: Sequence[str], generated: Sequence[GaussianStats], reference: Sequence[GaussianStats],
    clip_counts: tuple[Sequence[int], Sequence[int]],
) -> ClassScores:
    matrix = np.array([[frechet_distance(g, r) for r in reference] for g in generated])
    return ClassScores(tuple(class_names), matrix, tuple(clip_counts[0]), tuple(clip_counts[1]))


def class_stats(
    files_per_class: Sequence[Sequence[Path]], embedder: BuiltinEmbedder, audio: AudioConfig,
    batch_size: int, device: torch.device, progress: bool = False, label: str = "",
) -> list[GaussianStats]:
    return [
        gaussian_stats(embed_files(files, embedder, audio, batch_size, device, progress, f"embedding {label} {c}"))
        for c, files in enumerate(files_per_class)
    ]
