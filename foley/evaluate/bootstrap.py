"""Bootstrap over clips, shared by the metrics' intervals and the paired tests between runs.

A resample draws a class's clips with replacement (the windows of a clip stay together); a scorer
turns the drawn clip indices into a score (FAD, KAD, ...). Draws depend only on the number of clips,
the seed and the resample count, so two runs with as many clips per class get the same draws.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from foley.util.errors import FoleyError

ClipScorer = Callable[[np.ndarray], float]  # indices of the drawn clips (repeats allowed) -> score


def draw_clips(n_clips: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n_clips) clip indices, each row n_clips draws with replacement."""
    if n_clips < 2 or resamples < 2:
        raise FoleyError(f"bootstrap needs at least 2 clips and 2 resamples, got {n_clips} and {resamples}")
    return np.random.default_rng(seed).integers(0, n_clips, size=(resamples, n_clips))


def resampled_scores(scorer: ClipScorer, draws: np.ndarray) -> np.ndarray:
    return np.array([scorer(row) for row in draws])


def clip_rows(clip_sizes: Sequence[int], chosen: np.ndarray) -> np.ndarray:
    """The embedding rows of the chosen clips, when clip c holds clip_sizes[c] consecutive rows."""
    starts = np.concatenate([[0], np.cumsum(clip_sizes)[:-1]]).astype(int)
    return np.concatenate([np.arange(starts[c], starts[c] + clip_sizes[c]) for c in chosen])


def percentile_bounds(scores: np.ndarray, confidence: float) -> tuple[float, float]:
    """The central `confidence` percentile interval of resampled scores."""
    if not 0.0 < confidence < 1.0:
        raise FoleyError(f"confidence must be in (0, 1), got {confidence}")
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(scores, [tail, 100 - tail])
    return float(low), float(high)
