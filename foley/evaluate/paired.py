"""Is run A better than run B? Paired bootstrap tests per class and for the mean over classes, and the
rank agreement (Kendall tau) between the orderings of runs that several embedders or metrics give.

The paired bootstrap draws, for each class, the same clip indices for both runs (clip i of a class is
made from the same seed in every run, so clip i of A and clip i of B are a pair) and scores both on
the draw; the spread of the resampled differences A - B gives the interval and the p-value of
"no difference". Runs scored against the same reference only: the reference is held fixed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy.stats import kendalltau

from foley.evaluate.bootstrap import ClipScorer, draw_clips, percentile_bounds, resampled_scores
from foley.evaluate.fad import GaussianStats, fad_scorer
from foley.evaluate.kad import choose_bandwidth, kad_scorer
from foley.evaluate.saved import SavedEmbeddings
from foley.util.errors import FoleyError


@dataclass(frozen=True)
class PairedDifference:
    """Score of A minus score of B, its bootstrap interval, and the two-sided p-value of no difference."""

    difference: float
    low: float
    high: float
    p_value: float
    resamples: int


def bootstrap_p_value(differences: np.ndarray) -> float:
    """2 min(P(d <= 0), P(d >= 0)) over the resampled differences d (each count plus one, over resamples plus
    one, so never 0), capped at 1: the smallest two-sided level at which the percentile interval excludes 0.
    Identical runs give 1."""
    d = np.asarray(differences)
    below = (1 + np.count_nonzero(d <= 0)) / (1 + d.size)
    above = (1 + np.count_nonzero(d >= 0)) / (1 + d.size)
    return min(1.0, 2 * min(below, above))


def _difference(estimate: float, resampled: np.ndarray, confidence: float) -> PairedDifference:
    low, high = percentile_bounds(resampled, confidence)
    return PairedDifference(estimate, low, high, bootstrap_p_value(resampled), resampled.size)


@dataclass(frozen=True)
class PairedTest:
    classes: tuple[str, ...]
    per_class: tuple[PairedDifference, ...]
    mean: PairedDifference  # of the mean over classes


@dataclass(frozen=True)
class ScoredDraws:
    """One run scored on every clip and on each bootstrap draw, per class (class c drawn from seed + c):
    what a paired test needs of it, so that a run compared with several others is scored once."""

    classes: tuple[str, ...]
    clips: tuple[int, ...]
    estimates: np.ndarray  # (classes,): the score of all clips
    resampled: np.ndarray  # (classes, resamples)
    seed: int


def score_draws(scorers: Mapping[str, ClipScorer], clips: Mapping[str, int], seed: int = 0,
                resamples: int = 1000) -> ScoredDraws:
    """scorers: class -> scorer of drawn clip indices (foley.evaluate.fad.fad_scorer, kad.kad_scorer);
    clips: class -> its number of clips."""
    names = tuple(clips)
    if set(scorers) != set(names):
        raise FoleyError(f"scorers for classes {', '.join(sorted(scorers))}, clips for {', '.join(names)}")
    estimates = [scorers[n](np.arange(clips[n])) for n in names]
    resampled = [resampled_scores(scorers[n], draw_clips(clips[n], resamples, seed + c)) for c, n in enumerate(names)]
    return ScoredDraws(names, tuple(clips[n] for n in names), np.array(estimates), np.stack(resampled), seed)


def paired_test(a: ScoredDraws, b: ScoredDraws, confidence: float = 0.95) -> PairedTest:
    """A - B per class and for the mean over classes, from both runs' scores on the same draws."""
    if (a.classes, a.clips, a.seed, a.resampled.shape) != (b.classes, b.clips, b.seed, b.resampled.shape):
        raise FoleyError("a paired test needs both runs scored on the same draws (classes, clips, seed, resamples)")
    estimates, resampled = a.estimates - b.estimates, a.resampled - b.resampled
    per_class = tuple(_difference(float(e), r, confidence) for e, r in zip(estimates, resampled))
    return PairedTest(a.classes, per_class, _difference(float(estimates.mean()), resampled.mean(axis=0), confidence))


def require_paired(clips_a: Mapping[str, int], clips_b: Mapping[str, int], labels: tuple[str, str]) -> None:
    """FoleyError unless both runs hold the same number of clips in every class."""
    differ = [f"{name} ({clips_a[name]} vs {clips_b.get(name)})" for name in clips_a if clips_a[name] != clips_b.get(name)]
    if differ or set(clips_a) != set(clips_b):
        raise FoleyError(
            f"runs {labels[0]} and {labels[1]} cannot be paired clip by clip: clips per class differ in "
            f"{', '.join(differ) or 'their classes'} (sample the same number of clips per class in both)"
        )


# ---------------------------------------------------------------------------------------------
# Rank agreement between embedders and metrics


@dataclass(frozen=True)
class RankAgreement:
    """Kendall's tau-b between the orderings of the same runs under two scores (nan when one is constant)."""

    first: str
    second: str
    tau: float
    runs: int


def rank_agreement(scores: Mapping[str, Sequence[float]]) -> list[RankAgreement]:
    """Every pair of scores (e.g. "vggish FAD", "panns-wglm KAD"), each a value per run in one run order."""
    counts = {len(values) for values in scores.values()}
    if len(counts) > 1:
        raise FoleyError(f"every score needs one value per run; got {sorted(counts)} values")
    agreements = []
    for first, second in combinations(scores, 2):
        a, b = np.asarray(scores[first], dtype=float), np.asarray(scores[second], dtype=float)
        tau = float("nan") if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0 else float(kendalltau(a, b).statistic)
        agreements.append(RankAgreement(first, second, tau, len(a)))
    return agreements


# ---------------------------------------------------------------------------------------------
# Runs' saved embeddings (foley.evaluate.saved) as scorers


def saved_scorers(saved: SavedEmbeddings, metric: str, reference: Mapping[str, GaussianStats],
                  bandwidth_from: str = "reference") -> dict[str, ClipScorer]:
    """Class -> scorer of the saved generated clips: FAD against `reference` statistics, or KAD against the
    saved reference embeddings with the bandwidth chosen as the run chose it."""
    names = tuple(saved.generated)
    if metric == "fad":
        return {n: fad_scorer(saved.generated[n], reference[n]) for n in names}
    if saved.reference is None:
        raise FoleyError("KAD needs the reference's embeddings, and these saved embeddings hold none "
                         "(the reference came as statistics only)")
    scorers = {}
    for name in names:
        rows = np.concatenate(saved.generated[name])
        bandwidth = choose_bandwidth(saved.reference[name], rows, bandwidth_from, name)
        scorers[name] = kad_scorer(saved.reference[name], saved.generated[name], bandwidth)
    return scorers


def saved_draws(saved: SavedEmbeddings, metric: str, reference: Mapping[str, GaussianStats],
                bandwidth_from: str = "reference", seed: int = 0, resamples: int = 1000) -> ScoredDraws:
    """A run's saved embeddings scored on every clip and on each draw (for paired_test)."""
    return score_draws(saved_scorers(saved, metric, reference, bandwidth_from), saved.clips(), seed, resamples)
