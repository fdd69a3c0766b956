"""Per-class scores of a set of clips against a reference: the cross-class FAD matrix, KAD, and
optionally FAD-inf and bootstrap intervals per class and for the mean over classes.

The matrix [generated class, reference class] shows whether classes come out apart: its diagonal
is the per-class FAD. Distances are taken reference first, as the official evaluator does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from foley.config.vocoder_eval import METRICS
from foley.evaluate.bootstrap import draw_clips, percentile_bounds, resampled_scores
from foley.evaluate.embedding import Embedder, EmbedOptions, embed_class
from foley.evaluate.fad import (
    FADInf,
    FADInterval,
    GaussianStats,
    bootstrap_scores,
    fad_inf,
    fad_of_rows,
    frechet_distance,
    percentile_interval,
)
from foley.evaluate.kad import KADScore, class_kad, kad_scorer
from foley.evaluate.protocols import Protocol
from foley.util.errors import FoleyError


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
    matrix = _matrix(names, lambda gen, ref: frechet_distance(reference[ref], generated[gen]), cross_class)
    return ClassScores(
        names, matrix, tuple(generated[n].count for n in names), tuple(reference[n].count for n in names)
    )


def score_class_rows(
    class_names: Sequence[str],
    generated: Mapping[str, np.ndarray],
    reference: Mapping[str, GaussianStats],
    cross_class: bool = True,
) -> ClassScores:
    """score_classes of the generated classes' embeddings (N, D), through fad_of_rows (fast when N <= D)."""
    names = tuple(class_names)
    matrix = _matrix(names, lambda gen, ref: fad_of_rows(reference[ref], generated[gen]), cross_class)
    return ClassScores(names, matrix, tuple(len(generated[n]) for n in names), tuple(reference[n].count for n in names))


def _matrix(names: tuple[str, ...], distance, cross_class: bool) -> np.ndarray:
    matrix = np.full((len(names), len(names)), np.nan)
    for g, gen in enumerate(names):
        for r, ref in enumerate(names):
            if cross_class or g == r:
                matrix[g, r] = distance(gen, ref)
    return matrix


@dataclass(frozen=True)
class ExtraStatistics:
    """Which metrics to compute (fad, kad), and beyond them: FAD-inf, a bootstrap interval from this many
    resamples (0: none), and where KAD's bandwidth comes from (foley.evaluate.kad.BANDWIDTH_FROM)."""

    fad_inf: bool = False
    bootstrap: int = 0
    confidence: float = 0.95
    seed: int = 0
    metrics: tuple[str, ...] = ("fad",)
    kad_bandwidth: str = "reference"


@dataclass(frozen=True)
class SetScores:
    """A set of clips scored per class: the FAD matrix (None when FAD was not asked for), clip counts,
    the KADs when asked for, and the extras that were asked for."""

    class_names: tuple[str, ...]
    scores: ClassScores | None
    clips: tuple[int, ...]
    n_generated: tuple[int, ...]  # embeddings per class
    n_reference: tuple[int, ...]
    fad_inf: tuple[FADInf, ...] | None = None
    intervals: tuple[FADInterval, ...] | None = None
    mean_interval: FADInterval | None = None
    kad: tuple[KADScore, ...] | None = None
    mean_kad: KADScore | None = None  # the mean over classes (its bandwidth: nan)
    dim: int = 0  # embedding size

    @property
    def mean_fad_inf(self) -> float | None:
        return None if self.fad_inf is None else float(np.mean([f.score for f in self.fad_inf]))


def _fad_part(names: tuple[str, ...], clip_embeddings: Mapping[str, Sequence[np.ndarray]],
              reference: Mapping[str, GaussianStats], extras: ExtraStatistics, cross_class: bool) -> dict:
    pooled = {n: np.concatenate([np.asarray(c) for c in clip_embeddings[n]]) for n in names}
    scores = score_class_rows(names, pooled, reference, cross_class)
    part: dict = {"scores": scores}
    if extras.fad_inf:
        part["fad_inf"] = tuple(fad_inf(pooled[n], reference[n], seed=extras.seed + c) for c, n in enumerate(names))
    if extras.bootstrap:
        resampled = np.stack([bootstrap_scores(clip_embeddings[n], reference[n], extras.seed + c, extras.bootstrap)
                              for c, n in enumerate(names)])
        part["intervals"] = tuple(percentile_interval(float(f), r, extras.confidence) for f, r in zip(scores.fad, resampled))
        part["mean_interval"] = percentile_interval(scores.mean, resampled.mean(axis=0), extras.confidence)
    return part


def _kad_part(names: tuple[str, ...], clip_embeddings: Mapping[str, Sequence[np.ndarray]],
              reference: Mapping[str, np.ndarray], extras: ExtraStatistics) -> dict:
    plain = [class_kad(reference[n], clip_embeddings[n], extras.kad_bandwidth, name=n) for n in names]
    mean = float(np.mean([k.kad for k in plain]))
    if not extras.bootstrap:
        return {"kad": tuple(plain), "mean_kad": KADScore(mean, float("nan"), extras.kad_bandwidth)}
    resampled = np.stack([
        resampled_scores(kad_scorer(reference[n], clip_embeddings[n], k.bandwidth),
                         draw_clips(len(clip_embeddings[n]), extras.bootstrap, extras.seed + c))
        for c, (n, k) in enumerate(zip(names, plain))
    ])

    def with_interval(score: KADScore, draws: np.ndarray) -> KADScore:
        low, high = percentile_bounds(draws, extras.confidence)
        return dataclasses.replace(score, low=low, high=high, confidence=extras.confidence, resamples=extras.bootstrap)

    kads = tuple(with_interval(k, r) for k, r in zip(plain, resampled))
    return {"kad": kads, "mean_kad": with_interval(KADScore(mean, float("nan"), extras.kad_bandwidth), resampled.mean(axis=0))}


def score_set(
    class_names: Sequence[str],
    clip_embeddings: Mapping[str, Sequence[np.ndarray]],
    reference: Mapping[str, GaussianStats],
    extras: ExtraStatistics = ExtraStatistics(),
    cross_class: bool = True,
    reference_embeddings: Mapping[str, np.ndarray] | None = None,
) -> SetScores:
    """Score per-class clip embeddings (each clip: (windows, D)) against the reference: FAD against its
    statistics, KAD against its embeddings (required for kad).

    Class c's resampling uses the seed extras.seed + c, the same clip draws for FAD and KAD. The mean's
    interval comes from averaging the classes' resampled scores resample by resample (the classes' clips
    are resampled independently).
    """
    names = tuple(class_names)
    unknown = [m for m in extras.metrics if m not in METRICS]
    if unknown or not extras.metrics:
        raise FoleyError(f"unknown metric(s) {', '.join(unknown) or '(none given)'}: choose from {', '.join(METRICS)}")
    part: dict = {"scores": None}
    if "fad" in extras.metrics:
        part.update(_fad_part(names, clip_embeddings, reference, extras, cross_class))
    if "kad" in extras.metrics:
        if reference_embeddings is None:
            raise FoleyError("KAD needs the reference's embeddings, and this reference holds statistics only (official "
                             "gt_embedding.pkl files or an .npz): give a folder of clips or saved embeddings as the reference")
        part.update(_kad_part(names, clip_embeddings, reference_embeddings, extras))
    rows = {n: [np.asarray(c).reshape(-1, np.shape(c)[-1]) for c in clip_embeddings[n]] for n in names}
    dim = next((r[0].shape[1] for r in rows.values() if r), 0)
    n_reference = tuple(reference[n].count if n in reference else len(reference_embeddings[n]) for n in names)
    n_generated = tuple(sum(len(c) for c in rows[n]) for n in names)
    return SetScores(names, clips=tuple(len(rows[n]) for n in names), n_generated=n_generated, n_reference=n_reference,
                     dim=dim, **part)


def embed_classes(files_by_class: Mapping[str, Sequence[Path]], embedder: Embedder, protocol: Protocol,
                  options: EmbedOptions | None = None) -> dict[str, list[np.ndarray]]:
    """Each class's clips embedded (cached per clip with options.cache_dir): class -> per clip (windows, D)."""
    return {name: embed_class(name, files, embedder, protocol, options or EmbedOptions())
            for name, files in files_by_class.items()}
