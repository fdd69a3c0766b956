"""Best of K: draw K candidate maps for a clip and keep the one the prior itself rates best.

A prior trained with a null label (``prior.label_dropout`` > 0) models both p(map | class) and
p(map | null label), the class-free distribution. For each candidate it gives

    likelihood = log p(map | class)                                  (nats, summed over positions)
    evidence   = log p(map | class) - log p(map | null)

the evidence being the prior's own implicit classifier (log p(class | map) - log p(class), up to how
well the prior learned both). ``sample.best_of`` K > 1 draws a clip's K candidates from the seeds
clip_seed(seed, class, index, j), j = 0..K-1 (j = 0: the clip's own seed, so K = 1 is plain
sampling), then keeps, among the candidates whose evidence is at least half the largest
(evidence >= max - |max| / 2), the most likely one (ties: the lowest j).

Why both, measured on the demo (README, Quality over seeds, round 4): the likelier candidate tends
to be the cleaner clip (fewer bursts that do not end), but the likelihood favours maps of background
alone, the most predictable of all (a silent dog bark); such maps carry almost no evidence (9 nats
against 28 to 123 for the other clips of the measured run), so the evidence floor drops them. The
evidence alone prefers clips dense with events, as it adds up over every position of an event.
No config uses K > 1 by default: over ten seeds of the demo it did not help reliably.

The scores come from the full model on whole maps (teacher forcing, float32 then summed in
float64), for a sampling batch's candidates at once: a clip's choice depends only on its own
candidates (up to float rounding in its scores' last bits, which a batched model may round
differently), not on the sampler that drew them.
"""

from __future__ import annotations

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
