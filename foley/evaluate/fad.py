"""Fréchet Audio Distance as pure functions: embeddings -> Gaussian statistics -> distance.

Also FAD-inf (fadtk's extrapolation over sample sizes) and a bootstrap interval per class.
Embedding models live elsewhere (foley.evaluate.embedding); nothing here reads files.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import linalg

from foley.util.errors import FoleyError

SINGULAR_OFFSET = 1e-7


@dataclass(frozen=True)
class GaussianStats:
    """Mean (D,) and covariance (D, D) of a set of embeddings, with how many went in."""

    mu: np.ndarray
    sigma: np.ndarray
    count: int


def gaussian_stats(embeddings: np.ndarray) -> GaussianStats:
    """Mean and unbiased (ddof 1) covariance of embeddings (N, D), in float64."""
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise FoleyError(f"need at least 2 embeddings of shape (N, D) for statistics, got {x.shape}")
    return GaussianStats(mu=x.mean(axis=0), sigma=np.cov(x, rowvar=False, ddof=1), count=x.shape[0])


def _sqrtm(matrix: np.ndarray) -> np.ndarray:
    """scipy's matrix square root, quietly: a singular product is detected by the caller."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        return linalg.sqrtm(matrix)


def frechet_distance(a: GaussianStats, b: GaussianStats) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^1/2), computed as the official DCASE tool does.

    The matrix square root is scipy's sqrtm; when it is not finite (a singular product) both
    covariances get SINGULAR_OFFSET * I. An imaginary part above 1e-3 on the diagonal is an error.
    """
    if a.mu.shape != b.mu.shape or a.sigma.shape != b.sigma.shape:
        raise FoleyError(f"statistics of different sizes: {a.mu.shape} vs {b.mu.shape}")
    diff = a.mu - b.mu
    covmean = _sqrtm(a.sigma @ b.sigma)
    if not np.isfinite(covmean).all():
        offset = np.eye(a.sigma.shape[0]) * SINGULAR_OFFSET
        covmean = _sqrtm((a.sigma + offset) @ (b.sigma + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise FoleyError("the covariance product has a matrix square root with large imaginary parts")
        covmean = covmean.real
    return float(diff @ diff + np.trace(a.sigma) + np.trace(b.sigma) - 2 * np.trace(covmean))


@dataclass(frozen=True)
class FADInf:
    """FAD extrapolated to infinitely many embeddings: the intercept of FAD against 1 / n."""

    score: float
    slope: float
    r2: float
    points: tuple[tuple[int, float], ...]


def fad_inf(
    embeddings: np.ndarray,
    reference: GaussianStats,
    seed: int,
    steps: int = 25,
    min_n: int = 500,
) -> FADInf:
    """FAD-inf as fadtk computes it: for n evenly spaced from min_n to N, FAD of n embeddings drawn
    with replacement; a least-squares line through (1 / n, FAD) whose intercept is the score.

    min_n is lowered to N // 2 when the set is smaller than 2 * min_n.
    """
    x = np.asarray(embeddings, dtype=np.float64)
    total = x.shape[0]
    low = min(min_n, total // 2)
    if low < 2 or steps < 2:
        raise FoleyError(f"FAD-inf needs at least 4 embeddings and 2 steps, got {total} and {steps}")
    rng = np.random.default_rng(seed)
    sizes = np.linspace(low, total, steps).astype(int)
    scores = [frechet_distance(reference, gaussian_stats(x[rng.integers(0, total, size=n)])) for n in sizes]
    inverse = 1.0 / sizes
    slope, intercept = np.polyfit(inverse, scores, 1)
    residual = np.asarray(scores) - (slope * inverse + intercept)
    spread = np.sum((np.asarray(scores) - np.mean(scores)) ** 2)
    r2 = 1.0 - float(np.sum(residual**2) / spread) if spread > 0 else 1.0
    points = tuple((int(n), float(s)) for n, s in zip(sizes, scores))
    return FADInf(score=float(intercept), slope=float(slope), r2=r2, points=points)


@dataclass(frozen=True)
class FADInterval:
    """A percentile bootstrap confidence interval of one class's FAD."""

    fad: float
    low: float
    high: float
    confidence: float
    resamples: int


def bootstrap_scores(
    clip_embeddings: Sequence[np.ndarray], reference: GaussianStats, seed: int, resamples: int = 200
) -> np.ndarray:
    """FADs (resamples,) of the clips resampled with replacement, against the fixed reference.

    Clips (not windows) are drawn, so the windows of one clip stay together; the reference is held
    fixed (official reference sets come as statistics only).
    """
    if len(clip_embeddings) < 2 or resamples < 2:
        raise FoleyError("bootstrap needs at least 2 clips and 2 resamples")
    rng = np.random.default_rng(seed)
    clips = [np.asarray(c, dtype=np.float64) for c in clip_embeddings]
    scores = []
    for _ in range(resamples):
        chosen = rng.integers(0, len(clips), size=len(clips))
        scores.append(frechet_distance(reference, gaussian_stats(np.concatenate([clips[i] for i in chosen]))))
    return np.array(scores)


def percentile_interval(estimate: float, scores: np.ndarray, confidence: float = 0.95) -> FADInterval:
    """The percentile interval of resampled scores around an estimate."""
    if not 0.0 < confidence < 1.0:
        raise FoleyError(f"confidence must be in (0, 1), got {confidence}")
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(scores, [tail, 100 - tail])
    return FADInterval(fad=estimate, low=float(low), high=float(high), confidence=confidence, resamples=len(scores))
