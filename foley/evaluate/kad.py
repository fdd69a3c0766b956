"""Kernel Audio Distance (Chung et al. 2025, arXiv 2502.15602; kadtk) as pure functions.

KAD is the unbiased squared maximum mean discrepancy between the reference embeddings x (m, D) and
the generated ones y (n, D), with a Gaussian kernel k(a, b) = exp(-||a - b||^2 / (2 bw^2 + 1e-8)):
    KAD = 100 * ( sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (n (n - 1))
                  - 2 sum_{i, j} k(x_i, y_j) / (m n) )
as kadtk computes it (scale 100, unbiased within-set means, plain cross mean). It is distribution-free,
unbiased at any sample size (it can come out slightly negative), and needs no covariance, so it
stays meaningful with fewer embeddings than dimensions, where FAD is dominated by sample-size bias.

The bandwidth is the median pairwise distance of one set (the lower median over all pairs i < j,
as torch.median takes it). The KAD paper and kadtk's README take it from the reference set, as
foley does by default; kadtk's code (v1.1.0, kad.py) takes it from the evaluated set
(YoonjinXD/kadtk issue #9): `bandwidth_from="generated"` reproduces the code's numbers. A reference
bandwidth keeps one scale for every system scored against the same reference.
Everything is computed in float64.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.spatial.distance import cdist, pdist

from foley.config.vocoder_eval import KAD_BANDWIDTH_FROM as BANDWIDTH_FROM
from foley.evaluate.bootstrap import ClipScorer, clip_rows, draw_clips, percentile_bounds, resampled_scores
from foley.util.errors import FoleyError

SCALE = 100.0
GAMMA_EPS = 1e-8


def median_pairwise_distance(x: np.ndarray) -> float:
    """The lower median of the Euclidean distances between all pairs i < j of rows of x."""
    distances = np.sort(pdist(np.asarray(x, dtype=np.float64)))
    if distances.size == 0:
        raise FoleyError(f"the median pairwise distance needs at least 2 embeddings, got {len(x)}")
    return float(distances[(distances.size - 1) // 2])


def _rows(x: np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise FoleyError(f"KAD needs at least 2 {what} embeddings of shape (N, D), got {x.shape}")
    return x


def choose_bandwidth(reference: np.ndarray, generated: np.ndarray, bandwidth_from: str, name: str = "") -> float:
    """The median pairwise distance of the reference or of the generated embeddings (of class `name`);
    FoleyError when it is 0, which happens when at least half of the set's pairs are identical."""
    if bandwidth_from not in BANDWIDTH_FROM:
        raise FoleyError(f"KAD bandwidth from '{bandwidth_from}': choose one of {', '.join(BANDWIDTH_FROM)}")
    bandwidth = median_pairwise_distance(reference if bandwidth_from == "reference" else generated)
    if bandwidth == 0:
        other = "generated" if bandwidth_from == "reference" else "reference"
        raise FoleyError(
            f"KAD{f' of {name}' if name else ''}: the median distance between the {bandwidth_from} embeddings is 0, "
            f"so at least half of their pairs are identical (e.g. windows of digital silence, the zero padding of "
            f"files shorter than a clip), and KAD's bandwidth must be positive; take it from the {other} "
            f"embeddings (--kad-bandwidth {other}, evaluate.kad_bandwidth: {other}) or leave KAD out")
    return bandwidth


def gaussian_kernel(a: np.ndarray, b: np.ndarray, bandwidth: float) -> np.ndarray:
    return np.exp(-cdist(a, b, "sqeuclidean") / (2 * bandwidth**2 + GAMMA_EPS))


def _within_mean(kernel: np.ndarray) -> float:
    """Mean over the off-diagonal entries of a square kernel matrix."""
    n = kernel.shape[0]
    return float((kernel.sum() - np.trace(kernel)) / (n * (n - 1)))


def kernel_audio_distance(reference: np.ndarray, generated: np.ndarray, bandwidth: float) -> float:
    """KAD of generated (n, D) against reference (m, D) with a Gaussian kernel of the given bandwidth."""
    x, y = _rows(reference, "reference"), _rows(generated, "generated")
    if x.shape[1] != y.shape[1]:
        raise FoleyError(f"embeddings of different sizes: reference {x.shape[1]}, generated {y.shape[1]}")
    if not bandwidth > 0:
        raise FoleyError(f"the KAD bandwidth must be positive, got {bandwidth} (are all embeddings equal?)")
    within = _within_mean(gaussian_kernel(x, x, bandwidth)) + _within_mean(gaussian_kernel(y, y, bandwidth))
    return SCALE * (within - 2 * float(gaussian_kernel(x, y, bandwidth).mean()))


@dataclass(frozen=True)
class KADScore:
    """One class's KAD, its bandwidth and, when asked for, a percentile bootstrap interval over clips."""

    kad: float
    bandwidth: float
    bandwidth_from: str
    low: float | None = None
    high: float | None = None
    confidence: float | None = None
    resamples: int = 0


@dataclass(frozen=True)
class KADTerms:
    """What bootstrap resamples of the generated clips share: the reference term, the generated kernel
    matrix and each generated row's mean kernel value against the reference."""

    reference_term: float
    generated_kernel: np.ndarray  # (n, n)
    cross_means: np.ndarray  # (n,)
    bandwidth: float

    @classmethod
    def of(cls, reference: np.ndarray, generated: np.ndarray, bandwidth: float) -> KADTerms:
        x, y = _rows(reference, "reference"), _rows(generated, "generated")
        return cls(_within_mean(gaussian_kernel(x, x, bandwidth)), gaussian_kernel(y, y, bandwidth),
                   gaussian_kernel(y, x, bandwidth).mean(axis=1), bandwidth)

    def score(self, rows: np.ndarray) -> float:
        """KAD of the generated rows selected by index (repeats allowed), as kernel_audio_distance computes it."""
        kernel = self.generated_kernel[np.ix_(rows, rows)]
        return SCALE * (self.reference_term + _within_mean(kernel) - 2 * float(self.cross_means[rows].mean()))


def kad_scorer(reference: np.ndarray, clip_embeddings: Sequence[np.ndarray], bandwidth: float) -> ClipScorer:
    """Drawn clip indices -> KAD of those clips (windows of a clip stay together) against the fixed reference."""
    generated = np.concatenate([np.asarray(c, dtype=np.float64) for c in clip_embeddings])
    terms = KADTerms.of(reference, generated, bandwidth)
    sizes = [len(c) for c in clip_embeddings]
    return lambda chosen: terms.score(clip_rows(sizes, chosen))


def class_kad(
    reference: np.ndarray,
    clip_embeddings: Sequence[np.ndarray],
    bandwidth_from: str = "reference",
    seed: int = 0,
    resamples: int = 0,
    confidence: float = 0.95,
    name: str = "",
) -> KADScore:
    """KAD of one class's generated clips (each (windows, D)) against its reference embeddings, with a
    percentile bootstrap interval from `resamples` draws of the clips (0: none; the bandwidth stays fixed)."""
    generated = np.concatenate([np.asarray(c, dtype=np.float64) for c in clip_embeddings])
    bandwidth = choose_bandwidth(reference, generated, bandwidth_from, name)
    kad = kernel_audio_distance(reference, generated, bandwidth)
    if not resamples:
        return KADScore(kad, bandwidth, bandwidth_from)
    draws = draw_clips(len(clip_embeddings), resamples, seed)
    low, high = percentile_bounds(resampled_scores(kad_scorer(reference, clip_embeddings, bandwidth), draws), confidence)
    return KADScore(kad, bandwidth, bandwidth_from, low, high, confidence, resamples)
