"""Per-class scores of a set of clips against reference statistics: the cross-class matrix, and
optionally FAD-inf and bootstrap intervals per class and for the mean over classes.

The matrix [generated class, reference class] shows whether classes come out apart: its diagonal
is the per-class FAD. Distances are taken reference first, as the official evaluator does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from foley.evaluate.embedding import Embedder, EmbedOptions, embed_clips
from foley.evaluate.fad import (
    FADInf,
    FADInterval,
    GaussianStats,
    bootstrap_scores,
    fad_inf,
    frechet_distance,
    gaussian_stats,
    percentile_interval,
)
from foley.evaluate.protocols import Protocol


@dataclass(frozen=True)
class ClassScores:
    class_names: tuple[str, ...]
    matrix: np.ndarray  # (generated class, reference class); NaN off the diagonal when not computed
    n_generated: tuple[int, ...]  # embeddings per generated class
    n_reference: tuple[int, ...]

    @property
    def fad(self) -> np.ndarray:
        return np.diag(self.matrix)

    @property
    def mean(self) -> float:
        return float(self.fad.mean())

    @property
    def cross_class(self) -> bool:
        """Whether the distances between different classes were computed."""
        return bool(np.isfinite(self.matrix).all())

    def separated(self) -> list[bool]:
        """Per generated class: is it closer to its own reference class than to every other one?"""
        if not self.cross_class:
            raise ValueError("the cross-class distances were not computed (score_classes(..., cross_class=False))")
        return [bool(row[c] < np.delete(row, c).min()) for c, row in enumerate(self.matrix)]


def score_classes(
    class_names: Sequence[str],
    generated: Mapping[str, GaussianStats],
    reference: Mapping[str, GaussianStats],
    cross_class: bool = True,
) -> ClassScores:
    """Every generated class against every reference class, or (cross_class False) each against its own only."""
    names = tuple(class_names)
    matrix = np.full((len(names), len(names)), np.nan)
    for g, gen in enumerate(names):
        for r, ref in enumerate(names):
            if cross_class or g == r:
                matrix[g, r] = frechet_distance(reference[ref], generated[gen])
    return ClassScores(
        names, matrix, tuple(generated[n].count for n in names), tuple(reference[n].count for n in names)
    )


@dataclass(frozen=True)
class ExtraStatistics:
    """What to compute beyond the FAD: FAD-inf, and a bootstrap interval from this many resamples (0: none)."""

    fad_inf: bool = False
    bootstrap: int = 0
    confidence: float = 0.95
    seed: int = 0


@dataclass(frozen=True)
class SetScores:
    """A set of clips scored per class: the matrix, clip counts, and the extras that were asked for."""

    scores: ClassScores
    clips: tuple[int, ...]
    fad_inf: tuple[FADInf, ...] | None = None
    intervals: tuple[FADInterval, ...] | None = None
    mean_interval: FADInterval | None = None

    @property
    def mean_fad_inf(self) -> float | None:
        return None if self.fad_inf is None else float(np.mean([f.score for f in self.fad_inf]))


def score_set(
    class_names: Sequence[str],
    clip_embeddings: Mapping[str, Sequence[np.ndarray]],
    reference: Mapping[str, GaussianStats],
    extras: ExtraStatistics = ExtraStatistics(),
    cross_class: bool = True,
) -> SetScores:
    """Score per-class clip embeddings (each clip: (windows, D)) against the reference statistics.

    Class c's extras use the seed extras.seed + c. The mean's interval comes from averaging the
    classes' resampled FADs resample by resample (the classes' clips are resampled independently).
    """
    names = tuple(class_names)
    pooled = {n: np.concatenate([np.asarray(c) for c in clip_embeddings[n]]) for n in names}
    scores = score_classes(names, {n: gaussian_stats(x) for n, x in pooled.items()}, reference, cross_class)
    clips = tuple(len(clip_embeddings[n]) for n in names)
    infs = None
    if extras.fad_inf:
        infs = tuple(fad_inf(pooled[n], reference[n], seed=extras.seed + c) for c, n in enumerate(names))
    if not extras.bootstrap:
        return SetScores(scores, clips, infs)
    resampled = np.stack([
        bootstrap_scores(clip_embeddings[n], reference[n], extras.seed + c, extras.bootstrap) for c, n in enumerate(names)
    ])
    intervals = tuple(percentile_interval(float(f), r, extras.confidence) for f, r in zip(scores.fad, resampled))
    mean_interval = percentile_interval(scores.mean, resampled.mean(axis=0), extras.confidence)
    return SetScores(scores, clips, infs, intervals, mean_interval)


def score_clips(
    files_by_class: Mapping[str, Sequence[Path]],
    embedder: Embedder,
    protocol: Protocol,
    reference: Mapping[str, GaussianStats],
    extras: ExtraStatistics = ExtraStatistics(),
    options: EmbedOptions = EmbedOptions(),
    cross_class: bool = True,
) -> SetScores:
    """Embed each class's clips (cached per clip with options.cache_dir) and score them with score_set."""
    embeddings = {name: embed_clips(files, embedder, protocol, options) for name, files in files_by_class.items()}
    return score_set(tuple(files_by_class), embeddings, reference, extras, cross_class)
