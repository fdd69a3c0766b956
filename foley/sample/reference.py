"""Sampling code maps from the prior, with a seed of its own for every clip.

Clip ``index`` of class ``class_id`` in a run seeded ``run_seed`` draws from ``clip_seed(...)``:
one uniform number per map position, fixed in advance (``clip_uniforms``). The code at a
position is chosen from the model's logits by inverse-CDF sampling with that uniform
(``choose_codes``), in float64. A clip therefore does not depend on the batch it is sampled in,
on the other classes in that batch, or on the sampler's schedule: any sampler that produces the
same logits at each position (the reference here, the cached one in foley.sample.fast)
yields the same map.

Classifier-free guidance (``guidance`` s != 1, a prior with a null label): the logits at each
position are ``guided_logits(l_class, l_null, s)`` = l_null + s * (l_class - l_null), where l_null
are the logits of the same map prefix under the null label; temperature and top-k apply after.
s = 1 is plain conditional sampling and runs no null pass; s = 0 samples the null label alone
(unconditionally); s > 1 pushes the clips further towards their class.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from tqdm import tqdm

from foley.models.pixelsnail import PixelSNAIL


def clip_seed(run_seed: int, class_id: int, index: int, candidate: int = 0) -> int:
    """The seed of one clip: a 64-bit hash (numpy SeedSequence) of (run seed, class, index).

    ``candidate`` > 0: the seed of the clip's further candidate draws (``sample.best_of``), a hash
    of (run seed, class, index, candidate); candidate 0 is the clip's own seed.
    """
    for name, value in (("run_seed", run_seed), ("class_id", class_id), ("index", index), ("candidate", candidate)):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    entropy = [run_seed, class_id, index] + ([candidate] if candidate else [])
    state = np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)
    return int(state[0])


def clip_uniforms(seeds: Sequence[int], positions: int) -> torch.Tensor:
    """(B, positions) float64 uniforms in [0, 1): row b from its own CPU generator seeded seeds[b]."""
    rows = []
    for seed in seeds:
        generator = torch.Generator(device="cpu").manual_seed(int(seed))
        rows.append(torch.rand(positions, generator=generator, dtype=torch.float64))
    if not rows:
        return torch.empty(0, positions, dtype=torch.float64)
    return torch.stack(rows)


def choose_codes(
    logits: torch.Tensor, uniforms: torch.Tensor, temperature: float, top_k: int
) -> torch.Tensor:
    """Pick one code per row of ``logits`` (B, V) by inverse CDF with ``uniforms`` (B,).

    The distribution is softmax(logits / temperature) restricted to the ``top_k`` most likely
    codes (0: all). Codes are ordered by decreasing logit (ties: lower code first) and the code
    whose cumulative-probability interval holds the uniform is chosen. Everything runs in float64
    on the logits' device, row by row: a row's choice depends only on its logits and uniform.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0 (0 = all codes), got {top_k}")
    if logits.dim() != 2 or uniforms.shape != logits.shape[:1]:
        raise ValueError(
            f"need logits (B, V) and uniforms (B,), got {tuple(logits.shape)} and {tuple(uniforms.shape)}"
        )
    scaled = logits.detach().to(torch.float64) / temperature
    order = torch.sort(scaled, dim=1, descending=True, stable=True).indices
    kept = order if top_k == 0 else order[:, :top_k]
    kept_logits = scaled.gather(1, kept)
    weights = torch.exp(kept_logits - kept_logits[:, :1])
    cumulative = torch.cumsum(weights, dim=1)
    targets = uniforms.to(scaled.device, torch.float64).unsqueeze(1) * cumulative[:, -1:]
    rank = torch.searchsorted(cumulative, targets, right=True).squeeze(1)
    last_possible = (weights > 0).sum(dim=1) - 1
    rank = torch.minimum(rank, last_possible)
    return kept.gather(1, rank.unsqueeze(1)).squeeze(1)


def guided_logits(conditional: torch.Tensor, null: torch.Tensor, guidance: float) -> torch.Tensor:
    """Classifier-free guidance on raw logits: null + guidance * (conditional - null)."""
    return null + guidance * (conditional - null)


def check_guidance(prior: PixelSNAIL, guidance: float) -> None:
    """ValueError when ``guidance`` is negative, or differs from 1 on a prior without a null label."""
    if not guidance >= 0:
        raise ValueError(f"guidance must be >= 0 (1 = plain conditional sampling, 0 = unconditional), got {guidance}")
    if guidance != 1:
        prior.null_labels(0)


@torch.no_grad()
def sample_reference(
    prior: PixelSNAIL,
    labels: torch.Tensor,
    seeds: Sequence[int],
    temperature: float = 1.0,
    top_k: int = 0,
    progress: bool = False,
    guidance: float = 1.0,
) -> torch.Tensor:
    """Sample (B, H, W) code maps, running the whole model on the prefix rows for every position.

    The straightforward algorithm (H * W forward passes, twice with guidance != 1); the definition
    other samplers must match.
    """
    if len(seeds) != len(labels):
        raise ValueError(f"need one seed per label: {len(seeds)} seeds for {len(labels)} labels")
    check_guidance(prior, guidance)
    height, width = prior.map_shape
    device = prior.background.device
    labels = labels.to(device)
    uniforms = clip_uniforms(seeds, height * width).to(device)
    codes = torch.zeros(len(labels), height, width, dtype=torch.long, device=device)
    prior.check_inputs(codes, labels)
    was_training = prior.training
    prior.eval()
    try:
        for position in tqdm(range(height * width), desc="sampling (reference)", disable=not progress):
            reference_step(prior, codes, labels, position, uniforms[:, position], temperature, top_k, guidance)
    finally:
        prior.train(was_training)
    return codes


def reference_step(
    prior: PixelSNAIL,
    codes: torch.Tensor,
    labels: torch.Tensor,
    position: int,
    uniforms: torch.Tensor,
    temperature: float,
    top_k: int,
    guidance: float = 1.0,
) -> None:
    """One position of the reference sampler: the whole model on the rows so far, then the choice.

    Writes the chosen codes into ``codes`` (B, H, W) at ``position`` (raster order).
    """
    row, col = divmod(position, codes.shape[2])
    logits = prior(codes[:, : row + 1], labels)[:, :, row, col]
    if guidance != 1:
        null = prior(codes[:, : row + 1], prior.null_labels(len(labels)))[:, :, row, col]
        logits = guided_logits(logits, null, guidance)
    codes[:, row, col] = choose_codes(logits, uniforms, temperature, top_k)
