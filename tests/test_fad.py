"""Fréchet distance, statistics, FAD-inf and the bootstrap interval, against independent computations."""

import numpy as np
import pytest

from foley.evaluate.fad import (
    GaussianStats,
    bootstrap_scores,
    fad_inf,
    frechet_distance,
    gaussian_stats,
    percentile_interval,
)
from foley.util.errors import FoleyError


def eig_frechet(a: GaussianStats, b: GaussianStats) -> float:
    """||mu_a - mu_b||^2 + tr A + tr B - 2 tr (A^1/2 B A^1/2)^1/2, by symmetric eigen-decompositions."""
    values, vectors = np.linalg.eigh(a.sigma)
    root_a = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    inner = np.linalg.eigvalsh(root_a @ b.sigma @ root_a)
    diff = a.mu - b.mu
    return float(diff @ diff + np.trace(a.sigma) + np.trace(b.sigma) - 2 * np.sqrt(np.clip(inner, 0, None)).sum())


def random_stats(rng, dim, spectrum):
    q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    sigma = (q * spectrum) @ q.T
    return GaussianStats(rng.standard_normal(dim), (sigma + sigma.T) / 2, 100)


SPECTRA = {
    "well-conditioned": lambda rng, d: rng.uniform(0.5, 2.0, d),
    "spread": lambda rng, d: np.logspace(-6, 1, d),
    "near-singular": lambda rng, d: np.concatenate([rng.uniform(0.1, 1.0, d // 2), np.full(d - d // 2, 1e-12)]),
}


@pytest.mark.parametrize("kind", SPECTRA)
@pytest.mark.parametrize("dim", [8, 64])
def test_frechet_distance_equals_eigen_computation(kind, dim):
    rng = np.random.default_rng(dim)
    a = random_stats(rng, dim, SPECTRA[kind](rng, dim))
    b = random_stats(rng, dim, SPECTRA[kind](rng, dim))
    assert frechet_distance(a, b) == pytest.approx(eig_frechet(a, b), rel=1e-6)


def test_frechet_distance_of_rank_deficient_covariances_from_few_samples():
    rng = np.random.default_rng(3)
    a = gaussian_stats(rng.standard_normal((20, 32)))
    b = gaussian_stats(rng.standard_normal((20, 32)) + 0.5)
    assert frechet_distance(a, b) == pytest.approx(eig_frechet(a, b), rel=1e-6)


def test_frechet_distance_is_zero_on_itself_and_symmetric():
    rng = np.random.default_rng(1)
    a = gaussian_stats(rng.standard_normal((300, 16)))
    b = gaussian_stats(rng.standard_normal((300, 16)) * 1.5 + 0.2)
    assert abs(frechet_distance(a, a)) < 1e-9
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-9)
    assert frechet_distance(a, b) > 0.1


def test_frechet_distance_rejects_mismatched_and_non_psd_statistics():
    a = GaussianStats(np.zeros(3), np.eye(3), 10)
    with pytest.raises(FoleyError, match="different sizes"):
        frechet_distance(a, GaussianStats(np.zeros(4), np.eye(4), 10))
    with pytest.raises(FoleyError, match="imaginary"):
        frechet_distance(a, GaussianStats(np.zeros(3), -np.eye(3), 10))


def test_gaussian_stats_match_the_evaluators_accumulated_formula():
    x = np.random.default_rng(2).standard_normal((50, 6)).astype(np.float32)
    n = x.shape[0]
    x64 = x.astype(np.float64)
    total, outer = x64.sum(axis=0), sum(np.outer(row, row) for row in x64)
    mu = total / n
    sigma = outer / (n - 1) - np.outer(mu, mu) * n / (n - 1)
    stats = gaussian_stats(x)
    assert stats.count == n and stats.mu.dtype == np.float64
    np.testing.assert_allclose(stats.mu, mu, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(stats.sigma, sigma, rtol=1e-10, atol=1e-12)
    with pytest.raises(FoleyError):
        gaussian_stats(x[:1])


@pytest.mark.parametrize("shift", [0.0, 1.0])
def test_fad_inf_extrapolates_the_small_sample_bias_away(shift):
    dim = 6
    reference = GaussianStats(np.zeros(dim), np.eye(dim), 10**9)
    x = np.random.default_rng(5).standard_normal((4000, dim)) + shift / np.sqrt(dim)
    result = fad_inf(x, reference, seed=0, steps=10, min_n=200)
    ns = np.array([n for n, _ in result.points])
    scores = np.array([s for _, s in result.points])
    assert ns[0] == 200 and ns[-1] == 4000 and len(ns) == 10
    slope, intercept = np.polyfit(1.0 / ns, scores, 1)
    assert result.score == pytest.approx(intercept) and result.slope == pytest.approx(slope)
    fitted = slope / ns + intercept
    assert result.r2 == pytest.approx(1 - np.sum((scores - fitted) ** 2) / np.sum((scores - scores.mean()) ** 2))
    assert result.slope > 0
    # with n -> infinity the resamples become the pool itself; below the finite-n FADs on average
    assert result.score == pytest.approx(frechet_distance(gaussian_stats(x), reference), abs=0.02)
    assert result.score < scores.mean()
    assert fad_inf(x, reference, seed=0, steps=10, min_n=200) == result


def test_bootstrap_interval_is_seeded_and_collapses_for_identical_clips():
    rng = np.random.default_rng(6)
    reference = gaussian_stats(rng.standard_normal((500, 4)))
    clips = [rng.standard_normal((10, 4)) + 0.3 for _ in range(30)]
    estimate = frechet_distance(reference, gaussian_stats(np.concatenate(clips)))
    scores = bootstrap_scores(clips, reference, seed=1, resamples=50)
    assert np.array_equal(scores, bootstrap_scores(clips, reference, seed=1, resamples=50))
    assert not np.array_equal(scores, bootstrap_scores(clips, reference, seed=2, resamples=50))
    first = percentile_interval(estimate, scores)
    assert first.low < first.high and first.resamples == 50 and first.fad == estimate
    assert (first.low, first.high) == pytest.approx(tuple(np.percentile(scores, [2.5, 97.5])))
    same = bootstrap_scores([clips[0]] * 5, reference, seed=1, resamples=20)
    one_clip = frechet_distance(reference, gaussian_stats(np.concatenate([clips[0]] * 5)))
    assert same == pytest.approx(np.full(20, one_clip))  # every resample is the same clip five times
