"""Best of K: draw K candidate maps for a clip and keep the best by one of two rules.

``sample.best_of`` K > 1 draws a clip's K candidates from the seeds clip_seed(seed, class, index, j),
j = 0..K-1 (j = 0: the clip's own seed, so K = 1 is plain sampling). ``sample.best_of_by`` says
which candidate is kept.

``loudness``: the candidate whose decoded mel best fits the loudness of the class's real clips as
the codec reconstructs them (the run's training maps, decoded: what a generated clip can at best
look like). Two numbers describe a clip's loudness (``loudness_features``): its peak (the largest
log-mel value) and its median frame energy (the median over frames of log mean_f exp(mel)). A
candidate misfits the class (``LoudnessRange.misfit``) when its peak lies below the class's 5 %
quantile of peaks (nothing happens: a silent dog bark) or its median above the 95 % quantile of
medians (a sound that never stops), by how far, in units of the class's spread of that number;
the kept candidate is the one with the smallest misfit (ties, e.g. every candidate inside: the
lowest j, the clip's usual draw). These are the prior's timeline errors, which it cannot judge
itself: a map of background alone is the most predictable map it knows (README, Quality over
seeds, rounds 4 and 5). Needs no null label.

``prior``: the candidate the prior itself rates best. A prior trained with a null label
(``prior.label_dropout`` > 0) models both p(map | class) and p(map | null label), the class-free
distribution. For each candidate it gives

    likelihood = log p(map | class)                                  (nats, summed over positions)
    evidence   = log p(map | class) - log p(map | null)

the evidence being the prior's own implicit classifier (log p(class | map) - log p(class), up to how
well the prior learned both). The kept candidate is, among those whose evidence is at least half
the largest (evidence >= max - |max| / 2), the most likely one (ties: the lowest j). Why both,
measured on the demo (README, round 4): the likelier candidate tends to be the cleaner clip, but
the likelihood favours maps of background alone; such maps carry almost no evidence (9 nats
against 28 to 123 for the other clips of the measured run), so the evidence floor drops them.
Over ten seeds of the demo it did not help reliably; the demo keeps the best of 2 by loudness.

The prior's scores come from the full model on whole maps (teacher forcing, float32 then summed in
float64), for a sampling batch's candidates at once: a clip's choice depends only on its own
candidates (up to float rounding in its scores' last bits, which a batched model may round
differently), not on the sampler that drew them. Loudness is measured on each candidate decoded
alone, as the kept clip is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from foley.models.pixelsnail import PixelSNAIL


@torch.no_grad()
def candidate_scores(prior: PixelSNAIL, maps: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(likelihood, evidence), each (B,) float64: log p(maps[b] | labels[b]) and that minus
    log p(maps[b] | null label), in nats. ValueError when the prior has no null label."""
    null = prior.null_labels(len(labels))
    was_training = prior.training
    prior.eval()
    try:
        both = prior(torch.cat([maps, maps]), torch.cat([labels.to(null.device), null]))
    finally:
        prior.train(was_training)
    log_probs = F.log_softmax(both.float(), dim=1).gather(1, torch.cat([maps, maps]).unsqueeze(1)).squeeze(1)
    totals = log_probs.to(torch.float64).flatten(1).sum(dim=1)
    likelihood, null_likelihood = totals[: len(maps)], totals[len(maps) :]
    return likelihood, likelihood - null_likelihood


def pick(likelihood: torch.Tensor, evidence: torch.Tensor) -> int:
    """The kept candidate: the most likely among those with evidence >= max - |max| / 2 (first on ties)."""
    best_evidence = evidence.max()
    eligible = evidence >= best_evidence - best_evidence.abs() / 2
    ranked = torch.where(eligible, likelihood, torch.full_like(likelihood, -torch.inf))
    return int(torch.argmax(ranked))  # torch.argmax returns the first maximal index


RANGE_QUANTILES = (0.05, 0.95)  # the class's range: peaks above the 5 % quantile, medians below the 95 % one


def loudness_features(mels: np.ndarray) -> np.ndarray:
    """(N, 2) float64 for log-mels (N, n_mels, frames): each clip's peak (largest log-mel value) and
    median frame energy (median over frames of log of the mean over mel bins of exp(mel))."""
    mels = np.asarray(mels, dtype=np.float64)
    frame_energy = np.log(np.exp(mels).mean(axis=1))
    return np.stack([mels.max(axis=(1, 2)), np.median(frame_energy, axis=1)], axis=1)


@dataclass(frozen=True)
class LoudnessRange:
    """Where a class's real clips lie, as the codec reconstructs them (log-mel units)."""

    peak_low: float  # the 5 % quantile of the clips' peaks
    median_high: float  # the 95 % quantile of their median frame energies
    peak_spread: float  # the standard deviations of both over the clips (floored at 1e-3)
    median_spread: float

    @classmethod
    def of(cls, mels: np.ndarray) -> LoudnessRange:
        """The range of a class's reconstructed clips (N, n_mels, frames), N >= 1."""
        features = loudness_features(mels)
        spread = np.maximum(features.std(axis=0), 1e-3)
        return cls(float(np.quantile(features[:, 0], RANGE_QUANTILES[0])),
                   float(np.quantile(features[:, 1], RANGE_QUANTILES[1])), float(spread[0]), float(spread[1]))

    def misfit(self, mels: np.ndarray) -> np.ndarray:
        """(N,) for log-mels (N, n_mels, frames): 0 inside the range; else how far the peak lies below
        peak_low plus how far the median lies above median_high, each in units of its spread."""
        peak, median = loudness_features(mels).T
        return (np.maximum(self.peak_low - peak, 0.0) / self.peak_spread
                + np.maximum(median - self.median_high, 0.0) / self.median_spread)


def pick_by_loudness(misfits: np.ndarray) -> int:
    """The kept candidate: the smallest misfit (first on ties)."""
    return int(np.argmin(misfits))  # np.argmin returns the first minimal index
