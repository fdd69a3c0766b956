"""KAD against an independent implementation of kadtk's formula (pair by pair, in plain Python), with both
bandwidth choices; kadtk's own numbers on a worked example; the bootstrap's fast resample scoring."""

import itertools
import math

import numpy as np
import pytest

from foley.evaluate.bootstrap import clip_rows
from foley.evaluate.kad import KADTerms, class_kad, kernel_audio_distance, median_pairwise_distance
from foley.util.errors import FoleyError

X = [[0, 0], [1, 0], [0, 3], [4, 0]]
Y = [[1, 1], [2, 0], [0, 3], [4, 4], [1, 2]]


def lower_median_distance(points):
    """torch.median of torch.pdist: the lower of the two middle distances over pairs i < j."""
    distances = sorted(math.dist(a, b) for a, b in itertools.combinations(points, 2))
    return distances[(len(distances) - 1) // 2]


def kadtk_formula(x, y, bandwidth):
    """100 * (mean_{i != j} k(x_i, x_j) + mean_{i != j} k(y_i, y_j) - 2 mean_{i, j} k(x_i, y_j)),
    k(a, b) = exp(-|a - b|^2 / (2 bw^2 + 1e-8))."""
    gamma = 1.0 / (2 * bandwidth**2 + 1e-8)
    k = lambda a, b: math.exp(-gamma * math.dist(a, b) ** 2)
    within = lambda s: sum(k(a, b) for i, a in enumerate(s) for j, b in enumerate(s) if i != j) / (len(s) * (len(s) - 1))
    cross = sum(k(a, b) for a in x for b in y) / (len(x) * len(y))
    return 100 * (within(x) + within(y) - 2 * cross)


def test_worked_example_gives_kadtks_numbers():
    assert median_pairwise_distance(np.array(X)) == 3.0
    assert median_pairwise_distance(np.array(Y)) == pytest.approx(math.sqrt(5), abs=1e-12)  # numpy's median: 2.92
    assert kernel_audio_distance(np.array(X), np.array(Y), 3.0) == pytest.approx(-8.285689, abs=1e-6)
    assert kernel_audio_distance(np.array(X), np.array(Y), math.sqrt(5)) == pytest.approx(-12.1459114, abs=1e-6)


@pytest.mark.parametrize("bandwidth_from", ["reference", "generated"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_class_kad_equals_the_formula_with_its_bandwidth(seed, bandwidth_from):
    rng = np.random.default_rng(seed)
    reference = rng.standard_normal((7 + seed, 5))
    generated = rng.standard_normal((6 + 2 * seed, 5)) * 1.3 + 0.4
    clips = np.split(generated, [2, 3])  # clips of 2, 1 and the rest of the windows
    source = reference if bandwidth_from == "reference" else generated
    bandwidth = lower_median_distance(source.tolist())
    score = class_kad(reference, clips, bandwidth_from)
    assert score.bandwidth == pytest.approx(bandwidth, rel=1e-12) and score.bandwidth_from == bandwidth_from
    assert score.kad == pytest.approx(kadtk_formula(reference.tolist(), generated.tolist(), bandwidth), rel=1e-10, abs=1e-10)
    other = lower_median_distance((generated if bandwidth_from == "reference" else reference).tolist())
    assert abs(score.kad - kadtk_formula(reference.tolist(), generated.tolist(), other)) > 1e-6, "the choice matters"


def test_a_resample_scores_as_the_resampled_set_does():
    rng = np.random.default_rng(3)
    reference, clips = rng.standard_normal((9, 4)), [rng.standard_normal((n, 4)) for n in (2, 3, 1, 2)]
    generated = np.concatenate(clips)
    terms = KADTerms.of(reference, generated, 1.7)
    chosen = np.array([3, 1, 1, 0])
    rows = clip_rows([2, 3, 1, 2], chosen)
    np.testing.assert_array_equal(rows, [6, 7, 2, 3, 4, 2, 3, 4, 0, 1])
    assert terms.score(rows) == pytest.approx(kernel_audio_distance(reference, generated[rows], 1.7), rel=1e-12)
    score = class_kad(reference, clips, seed=5, resamples=50)
    assert score.resamples == 50 and score.low <= score.high and score.confidence == 0.95
    assert class_kad(reference, clips, seed=5, resamples=50) == score


def test_kad_refuses_what_it_cannot_score():
    with pytest.raises(FoleyError, match="at least 2 generated"):
        kernel_audio_distance(np.zeros((3, 2)), np.zeros((1, 2)), 1.0)
    with pytest.raises(FoleyError, match="different sizes"):
        kernel_audio_distance(np.zeros((3, 2)), np.zeros((3, 4)), 1.0)
    with pytest.raises(FoleyError, match="bandwidth must be positive"):
        kernel_audio_distance(np.zeros((3, 2)), np.ones((2, 2)), 0.0)


def test_a_zero_median_distance_names_the_class_the_set_and_the_fix():
    """Padding silence: more than half of a reference's windows identical -> median distance 0 -> one
    message naming the class, the set and the other choice of bandwidth; that choice then scores."""
    rng = np.random.default_rng(0)
    reference = np.concatenate([np.zeros((8, 3)), rng.normal(size=(3, 3))])  # 28 of 55 pairs identical
    generated = [rng.normal(size=(4, 3)) for _ in range(3)]
    with pytest.raises(FoleyError, match=r"KAD of gunshot: the median distance between the reference embeddings "
                                         r"is 0.*--kad-bandwidth generated"):
        class_kad(reference, generated, name="gunshot")
    with pytest.raises(FoleyError, match="between the generated embeddings is 0.*--kad-bandwidth reference"):
        class_kad(rng.normal(size=(5, 3)), [np.ones((3, 3))], bandwidth_from="generated")
    assert class_kad(reference, generated, bandwidth_from="generated", name="gunshot").kad > 0


def test_set_scores_hold_kad_per_class_and_its_mean_with_fad_optional():
    from foley.evaluate.bootstrap import draw_clips, percentile_bounds, resampled_scores
    from foley.evaluate.fad import gaussian_stats
    from foley.evaluate.kad import kad_scorer
    from foley.evaluate.scores import ExtraStatistics, score_set
    from foley.evaluate.tables import FAD_FIELDS, Provenance, fad_rows, format_table

    rng = np.random.default_rng(6)
    generated = {n: [rng.standard_normal((2, 3)) + k for _ in range(8)] for k, n in enumerate("ab")}
    reference = {n: rng.standard_normal((12, 3)) + k for k, n in enumerate("ab")}
    stats = {n: gaussian_stats(r) for n, r in reference.items()}
    extras = ExtraStatistics(bootstrap=20, seed=4, metrics=("kad",))
    result = score_set("ab", generated, stats, extras, reference_embeddings=reference)
    assert result.scores is None and result.intervals is None and result.dim == 3 and result.n_reference == (12, 12)
    draws = []
    for c, n in enumerate("ab"):
        plain = class_kad(reference[n], generated[n])
        assert result.kad[c].kad == plain.kad and result.kad[c].bandwidth == plain.bandwidth
        draws.append(resampled_scores(kad_scorer(reference[n], generated[n], plain.bandwidth), draw_clips(8, 20, 4 + c)))
        assert (result.kad[c].low, result.kad[c].high) == percentile_bounds(draws[-1], 0.95)
    assert result.mean_kad.kad == pytest.approx(np.mean([k.kad for k in result.kad]))
    assert (result.mean_kad.low, result.mean_kad.high) == percentile_bounds(np.mean(draws, axis=0), 0.95)
    rows = fad_rows(result, Provenance("e", "e (test)", "standard", "r", "id"))
    assert list(rows[0]) == list(FAD_FIELDS) and rows[0]["fad"] == rows[0]["fad_inf"] == ""
    assert [r["class"] for r in rows] == ["a", "b", "mean"] and rows[-1]["kad"] == f"{result.mean_kad.kad:.6f}"
    assert rows[0]["kad_bandwidth_from"] == "reference" and rows[-1]["clips"] == 16 and rows[-1]["n_generated"] == 32
    assert "KAD" in format_table(result, Provenance("e", "e (test)", "standard", "r", "id")).splitlines()[1]
    with pytest.raises(FoleyError, match="KAD needs the reference's embeddings"):
        score_set("ab", generated, stats, extras)
