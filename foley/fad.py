"""Fréchet Audio Distance as pure functions: embeddings -> Gaussian statistics -> distance.

Embedding models live elsewhere and are passed in by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import linalg

from foley.errors import FoleyError

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


def frechet_distance(a: GaussianStats, b: GaussianStats) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^1/2), computed as the official DCASE tool does.

    The matrix square root is scipy's sqrtm; when it is not finite (a singular product) both
    covariances get SINGULAR_OFFSET * I. An imaginary part above 1e-3 on the diagonal is an error.
    """
    if a.mu.shape != b.mu.shape or a.sigma.shape != b.sigma.shape:
        raise FoleyError(f"statistics of different sizes: {a.mu.shape} vs {b.mu.shape}")
    diff = a.mu - b.mu
    covmean, _ = linalg.sqrtm(a.sigma @ b.sigma, disp=False)
    if not np.isfinite(covmean).all():
        offset = np.eye(a.sigma.shape[0]) * SINGULAR_OFFSET
        covmean = linalg.sqrtm((a.sigma + offset) @ (b.sigma + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise FoleyError("the covariance product has a matrix square root with large imaginary parts")
        covmean = covmean.real
    return float(diff @ diff + np.trace(a.sigma) + np.trace(b.sigma) - 2 * np.trace(covmean))
