"""Paired bootstrap tests between runs, Kendall's tau between orderings, and the small-sample caution."""

import itertools
import math

import numpy as np
import pytest

from foley.evaluate.bootstrap import draw_clips
from foley.evaluate.fad import fad_scorer, gaussian_stats, sample_size_warning
from foley.evaluate.kad import kad_scorer
from foley.evaluate.paired import bootstrap_p_value, paired_test, rank_agreement, require_paired, score_draws
from foley.util.errors import FoleyError

rng = np.random.default_rng(0)
REFERENCE = {name: rng.standard_normal((60, 3)) + shift for name, shift in (("dog", 0.0), ("rain", 2.0))}


def clips_like(name, n, offset, seed):
    g = np.random.default_rng(seed)
    return [g.standard_normal((2, 3)) + (0.0 if name == "dog" else 2.0) + offset for _ in range(n)]


def fad_scorers(offset, seed):
    return {n: fad_scorer(clips_like(n, 20, offset, seed), gaussian_stats(REFERENCE[n])) for n in REFERENCE}


def paired_bootstrap(scorers_a, scorers_b, clips, seed=0, resamples=1000):
    """A - B, each run scored once on the shared draws, as foley compare pairs runs."""
    return paired_test(score_draws(scorers_a, clips, seed, resamples), score_draws(scorers_b, clips, seed, resamples))


def test_a_run_against_itself_has_p_one_and_no_difference():
    scorers = fad_scorers(0.3, seed=1)
    result = paired_bootstrap(scorers, scorers, {"dog": 20, "rain": 20}, resamples=40)
    for diff in (*result.per_class, result.mean):
        assert diff.p_value == 1.0 and diff.difference == 0.0 and diff.low == diff.high == 0.0 and diff.resamples == 40


def test_a_clearly_worse_run_is_significant_and_a_near_copy_is_not():
    good, bad = fad_scorers(0.0, seed=1), fad_scorers(1.5, seed=2)
    result = paired_bootstrap(bad, good, {"dog": 20, "rain": 20}, resamples=200)
    assert all(d.difference > 0 and d.low > 0 and d.p_value < 0.02 for d in (*result.per_class, result.mean))
    similar = fad_scorers(0.02, seed=1)
    assert paired_bootstrap(similar, good, {"dog": 20, "rain": 20}, resamples=200).mean.p_value > 0.05


def test_both_runs_are_scored_on_the_same_draws_and_the_mean_averages_classes():
    seen = {"a": [], "b": []}

    def recorder(run, value):
        def score(chosen):
            seen[run].append(chosen.copy())
            return value * chosen.sum()
        return score

    result = paired_bootstrap({"x": recorder("a", 2.0), "y": recorder("a", 1.0)},
                              {"x": recorder("b", 1.0), "y": recorder("b", 1.0)}, {"x": 5, "y": 4}, seed=3, resamples=10)
    assert len(seen["a"]) == len(seen["b"]) == 2 * 11
    assert all(np.array_equal(a, b) for a, b in zip(seen["a"], seen["b"]))
    draws_x = draw_clips(5, 10, seed=3)
    differences_x = draws_x.sum(axis=1) * (2.0 - 1.0)
    assert result.per_class[0].difference == 10.0  # 2 * (0 + ... + 4) - (0 + ... + 4)
    assert (result.per_class[0].low, result.per_class[0].high) == pytest.approx(np.percentile(differences_x, [2.5, 97.5]))
    assert result.mean.difference == pytest.approx((10.0 + 0.0) / 2)


def test_kad_scorers_pair_as_well():
    a = {n: kad_scorer(REFERENCE[n], clips_like(n, 15, 0.0, 4), 1.5) for n in REFERENCE}
    result = paired_bootstrap(a, a, {"dog": 15, "rain": 15}, resamples=20)
    assert result.mean.p_value == 1.0


def test_p_value_counts_the_resampled_differences_on_each_side_of_zero():
    assert bootstrap_p_value(np.full(99, 0.5)) == pytest.approx(2 / 100)
    assert bootstrap_p_value(np.array([-1.0, 1.0] * 50)) == 1.0
    assert bootstrap_p_value(np.array([-1.0] * 10 + [1.0] * 89)) == pytest.approx(2 * 11 / 100)


def kendall_tau_b(a, b):
    """(concordant - discordant) / sqrt((pairs - ties in a) (pairs - ties in b)), counted pair by pair."""
    concordant = discordant = ties_a = ties_b = 0
    for i, j in itertools.combinations(range(len(a)), 2):
        da, db = a[i] - a[j], b[i] - b[j]
        ties_a += da == 0
        ties_b += db == 0
        concordant += da * db > 0
        discordant += da * db < 0
    pairs = len(a) * (len(a) - 1) / 2
    return (concordant - discordant) / math.sqrt((pairs - ties_a) * (pairs - ties_b))


def test_rank_agreement_is_kendalls_tau_b_for_every_pair_of_scores():
    scores = {"vggish FAD": [3.0, 1.0, 2.0, 5.0, 4.0], "panns FAD": [2.5, 1.0, 3.0, 4.0, 4.0], "panns KAD": [1, 2, 3, 4, 5]}
    agreements = rank_agreement(scores)
    assert [(a.first, a.second) for a in agreements] == [("vggish FAD", "panns FAD"), ("vggish FAD", "panns KAD"),
                                                          ("panns FAD", "panns KAD")]
    for agreement in agreements:
        expected = kendall_tau_b(scores[agreement.first], scores[agreement.second])
        assert agreement.tau == pytest.approx(expected, abs=1e-12) and agreement.runs == 5
    assert math.isnan(rank_agreement({"a": [1.0, 1.0], "b": [1.0, 2.0]})[0].tau)
    with pytest.raises(FoleyError, match="one value per run"):
        rank_agreement({"a": [1.0, 2.0], "b": [1.0]})


def test_unpaired_runs_and_small_samples_are_named():
    with pytest.raises(FoleyError, match=r"rain \(100 vs 90\)"):
        require_paired({"dog": 100, "rain": 100}, {"dog": 100, "rain": 90}, ("a", "b"))
    assert sample_size_warning(100, 128) is not None and "prefer KAD" in sample_size_warning(100, 2048)
    assert sample_size_warning(200, 128) is None


def test_saved_runs_pair_clip_by_clip(tmp_path):
    from foley.evaluate.kad import class_kad
    from foley.evaluate.paired import saved_draws, saved_scorers
    from foley.evaluate.saved import EmbeddingSource, load_embeddings, save_embeddings

    source = EmbeddingSource("e", "e (test)", "standard", "standard-0", 3, "r", "id")
    names = {n: [f"{i:04d}.wav" for i in range(20)] for n in REFERENCE}
    for run, offset in (("a", 0.0), ("b", 1.0)):
        generated = {n: clips_like(n, 20, offset, seed=7) for n in REFERENCE}
        save_embeddings(tmp_path / run, source, generated, names, REFERENCE)
    a, b = (load_embeddings(tmp_path / run, list(REFERENCE)) for run in "ab")
    stats = {n: gaussian_stats(r) for n, r in REFERENCE.items()}
    kad_a = saved_scorers(a, "kad", stats)
    every = np.arange(20)
    assert kad_a["dog"](every) == pytest.approx(class_kad(a.reference["dog"], a.generated["dog"]).kad, rel=1e-12)
    for metric in ("fad", "kad"):
        first = saved_draws(a, metric, stats, resamples=100)
        assert paired_test(first, saved_draws(a, metric, stats, resamples=100)).mean.p_value == 1.0
        worse = paired_test(saved_draws(b, metric, stats, resamples=100), first)
        assert worse.mean.difference > 0 and worse.mean.p_value < 0.05
        with pytest.raises(FoleyError, match="same draws"):
            paired_test(saved_draws(b, metric, stats, resamples=50), first)
