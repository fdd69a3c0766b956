"""EnCodec's loss balancer: configured weights become each loss's share of the gradient at a model output.

Written from the description of encodec's `Balancer` (and audiocraft's). For losses l_k that depend
on the model only through its output y, with weights w_k:
1. g_k = d l_k / d y for each loss;
2. n_k = the L2 norm of g_k over each clip's elements, averaged over the clips of the batch;
3. an EMA of each n_k with decay beta, bias-corrected (sum_t beta^(T-t) n_k,t / sum_t beta^(T-t),
   so the first step uses n_k itself);
4. the gradient handed to y is G = sum_k s_k g_k with s_k = (w_k / sum_j w_j) * R / (eps + EMA(n_k)),
   so each loss's gradient has (about) the norm share w_k / sum_j w_j of R per clip, whatever
   the loss's own scale.
Under data parallelism the norms are those of the global batch: each rank's per-clip norms of the
global-mean gradient are summed over ranks and divided by the global batch size, so every rank
uses the same scales, the ones one process with the whole batch would use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from foley.train.batches import BatchShare
from foley.util import distributed

EPSILON = 1e-12


class LossBalancer:
    def __init__(self, weights: Mapping[str, float], total_norm: float = 1.0, decay: float = 0.999):
        if not weights or sum(weights.values()) <= 0:
            raise ValueError(f"the balancer needs weights with a positive sum, got {dict(weights)}")
        self.weights, self.total_norm, self.decay = dict(weights), total_norm, decay
        self.sums = {name: 0.0 for name in self.weights}
        self.fix = {name: 0.0 for name in self.weights}

    def output_gradient(self, losses: Mapping[str, torch.Tensor], output: torch.Tensor,
                        share: BatchShare | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """G (shaped as `output`) for `losses`, each a mean over this rank's clips computed from
        `output`, and the scale s_k of each loss. Updates the EMA of the norms."""
        names = list(self.weights)
        grads = [torch.autograd.grad(losses[name], output, retain_graph=True, allow_unused=True)[0] for name in names]
        grads = [torch.zeros_like(output) if g is None else g for g in grads]
        scales = self.update(dict(zip(names, self.clip_norms(grads, share))))
        return sum(scales[name] * g for name, g in zip(names, grads)), scales

    def clip_norms(self, grads: list[torch.Tensor], share: BatchShare | None) -> list[float]:
        """Per loss, the mean over the global batch of each clip's gradient norm (of the global mean)."""
        weight, total = (1.0, None) if share is None else (share.weight, share.total)
        local = [float(g.flatten(1).norm(dim=1).sum()) * weight for g in grads]
        summed = distributed.summed_floats(local)
        count = total if total is not None else grads[0].shape[0]
        return [value / count for value in summed]

    def update(self, norms: Mapping[str, float]) -> dict[str, float]:
        """Fold this step's norms into the EMA and return each loss's scale s_k."""
        total_weight = sum(self.weights.values())
        scales = {}
        for name, weight in self.weights.items():
            self.sums[name] = self.decay * self.sums[name] + norms[name]
            self.fix[name] = self.decay * self.fix[name] + 1.0
            average = self.sums[name] / self.fix[name]
            scales[name] = weight / total_weight * self.total_norm / (EPSILON + average)
        return scales

    def state_dict(self) -> dict[str, Any]:
        return {"sums": dict(self.sums), "fix": dict(self.fix)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.sums, self.fix = dict(state["sums"]), dict(state["fix"])
