"""Per-class scores of generated clips against reference statistics, and the cross-class matrix.

The matrix [generated class, reference class] shows whether classes come out apart: its diagonal
is the per-class FAD. Distances are taken reference first, as the official evaluator does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from foley.fad import GaussianStats, frechet_distance


@dataclass(frozen=True)
class ClassScores:
    class_names: tuple[str, ...]
    matrix: np.ndarray  # (generated class, reference class)
    n_generated: tuple[int, ...]  # embeddings per generated class
    n_reference: tuple[int, ...]

    @property
    def fad(self) -> np.ndarray:
        return np.diag(self.matrix)

    @property
    def mean(self) -> float:
        return float(self.fad.mean())

    def separated(self) -> list[bool]:
        """Per generated class: is it closer to its own reference class than to every other one?"""
        return [bool(row[c] < np.delete(row, c).min()) for c, row in enumerate(self.matrix)]


def score_classes(
    class_names: Sequence[str], generated: Mapping[str, GaussianStats], reference: Mapping[str, GaussianStats]
) -> ClassScores:
    names = tuple(class_names)
    matrix = np.array([[frechet_distance(reference[r], generated[g]) for r in names] for g in names])
    return ClassScores(
        names, matrix, tuple(generated[n].count for n in names), tuple(reference[n].count for n in names)
    )
