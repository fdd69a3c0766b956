"""k-means (Lloyd's algorithm), used to initialise a codebook from data.

The definition follows the description of EnCodec's codebook k-means: the initial means are k
distinct samples drawn at random (with replacement when there are fewer samples than means);
each iteration assigns every sample to its nearest mean by squared Euclidean distance (ties to
the lowest index) and moves each mean that has members to their average, while a mean without
members stays where it is. It stops after `iterations` or as soon as no assignment changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

ITERATIONS = 50  # EnCodec's and audiocraft's shipped setting


@dataclass(frozen=True)
class KMeansResult:
    means: torch.Tensor  # (k, dim)
    counts: torch.Tensor  # (k,) float: members of each mean in the last assignment


def nearest(samples: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """Index of the nearest mean (k, dim) for each sample (n, dim), by squared Euclidean distance."""
    distance = samples.pow(2).sum(1, keepdim=True) - 2 * samples @ means.t() + means.pow(2).sum(1)
    return distance.argmin(1)


@torch.no_grad()
def kmeans(samples: torch.Tensor, k: int, iterations: int = ITERATIONS) -> KMeansResult:
    """k means of the rows of `samples` (n, dim); draws the initial means from torch's global RNG."""
    n = samples.shape[0]
    if n >= k:
        picks = torch.randperm(n, device=samples.device)[:k]
    else:
        picks = torch.randint(0, n, (k,), device=samples.device)
    means = samples[picks].clone()
    assignment = nearest(samples, means)
    for iteration in range(iterations):
        counts = torch.bincount(assignment, minlength=k).to(samples.dtype)
        sums = torch.zeros_like(means).index_add_(0, assignment, samples)
        filled = counts > 0
        means[filled] = sums[filled] / counts[filled, None]
        if iteration == iterations - 1:
            break
        moved = nearest(samples, means)
        if torch.equal(moved, assignment):
            break
        assignment = moved
    return KMeansResult(means, torch.bincount(assignment, minlength=k).to(samples.dtype))
