"""Best of K: draw K candidate maps for a clip and keep the one the prior finds most typical of its class.

A prior trained with a null label (``prior.label_dropout`` > 0) models both p(map | class) and
p(map | null label), the class-free distribution. Their log ratio, the *class evidence*

    evidence(map, class) = log p(map | class) - log p(map | null)   (nats, summed over positions)

is the prior's own implicit classifier (Bayes: log p(class | map) - log p(class), up to how well the
prior learned both). It is low for a map any class could have produced (a clip of background alone)
and for one nearer another class. ``sample.best_of`` K > 1 draws a clip's K candidates from the
seeds clip_seed(seed, class, index, j), j = 0..K-1 (j = 0: the clip's own seed, so K = 1 is plain
sampling), and keeps the candidate with the largest evidence (ties: the lowest j). The evidence is
computed by the full model on whole maps (teacher forcing, float32 then summed in float64) for one
clip's K candidates at a time, so a clip's choice depends only on its own candidates, never on
the batch or the sampler that drew them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from foley.models.pixelsnail import PixelSNAIL


@torch.no_grad()
def class_evidence(prior: PixelSNAIL, maps: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B,) float64: log p(maps[b] | labels[b]) - log p(maps[b] | null label), in nats.

    ValueError when the prior has no null label (trained with prior.label_dropout 0).
    """
    null = prior.null_labels(len(labels))
    was_training = prior.training
    prior.eval()
    try:
        both = prior(torch.cat([maps, maps]), torch.cat([labels.to(null.device), null]))
    finally:
        prior.train(was_training)
    log_probs = F.log_softmax(both.float(), dim=1).gather(1, torch.cat([maps, maps]).unsqueeze(1)).squeeze(1)
    totals = log_probs.to(torch.float64).flatten(1).sum(dim=1)
    return totals[: len(maps)] - totals[len(maps) :]


def choose_candidate(prior: PixelSNAIL, candidates: torch.Tensor, label: int) -> tuple[int, torch.Tensor]:
    """The index of the candidate map (K, H, W) of one clip of class ``label`` with the largest class
    evidence (ties: the lowest index), and the (K,) evidence of all of them."""
    labels = torch.full((len(candidates),), label, dtype=torch.long, device=candidates.device)
    evidence = class_evidence(prior, candidates, labels)
    best = int(torch.argmax(evidence))  # torch.argmax returns the first maximal index
    return best, evidence
