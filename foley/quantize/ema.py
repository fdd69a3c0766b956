"""Vector quantisers with EMA codebooks: one level (VQ) or several on successive residuals (RVQ).

`EMACodebook` is the DCASE baseline's quantiser (Sonnet's VQ-VAE-EMA): nearest code by squared
distance, codebook = EMA of assigned vectors / Laplace-smoothed EMA cluster sizes, updated only
in training mode, with `embed` stored (dim, codebook_size) as in the baseline. Options that
the baseline lacks fight codebook collapse: `init="data"` sets the codebook from the first
training batch's vectors instead of N(0, 1); `init="kmeans"` sets it to the k-means of that
batch's vectors (foley.quantize.kmeans), with each code's EMA cluster size its member count and
its EMA sum mean * count, so the first EMA step keeps the means (EnCodec stores the bare means
as the sum, which shrinks every code by about 1/count at that step); a code that k-means left
empty keeps its initial vector with a count of one, as a data init sets it, rather than a zero
sum that would pull it to the origin; `dead_code_threshold` > 0 moves every code whose EMA
cluster size falls below it onto a random vector of the current batch (as in Jukebox and
SoundStream), setting its EMA sum and size too, so the move lasts.
Under data-parallel training every rank quantises its slice of the batch: the per-step cluster
counts and vector sums are summed over ranks before the EMA update, and the vectors that a data
init or a restart copies are drawn from all ranks' vectors with rank 0's draw (foley.util.distributed),
and k-means runs on all ranks' vectors pooled in rank order with rank 0's result kept, so every
rank keeps the same codebooks, the ones one process would learn from the whole batch.
`ResidualQuantizer` chains levels: level l quantises what the levels before it left over; the
quantised output is the sum of the chosen vectors (straight-through), and the commitment loss is
the sum over levels of mean((q_l - r_l)^2) with the codes held fixed. One level is plain VQ.
Quantizer dropout (`dropout` = p > 0, SoundStream's bitrate scalability): with probability p a
training step quantises with only the first n levels, n uniform in 1..L, else with all L. The
draw is one per step, for the whole batch, on every rank alike (rank 0's draw; see
`training_levels`); levels past n neither quantise nor update their codebooks in that step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from foley.quantize.base import QuantizedResult
from foley.quantize.kmeans import kmeans
from foley.util import distributed

if TYPE_CHECKING:
    from foley.config import QuantizerConfig


class EMACodebook(nn.Module):
    def __init__(self, dim: int, size: int, decay: float = 0.99, eps: float = 1e-5,
                 init: str = "random", dead_code_threshold: float = 0.0):
        super().__init__()
        self.dim, self.size, self.decay, self.eps = dim, size, decay, eps
        self.init, self.dead_code_threshold = init, dead_code_threshold
        embed = torch.randn(dim, size)
        self.register_buffer("embed", embed)
        self.register_buffer("cluster_size", torch.zeros(size))
        self.register_buffer("embed_avg", embed.clone())

    def forward(self, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Nearest codes for vectors (N, dim) -> (their code vectors (N, dim), codes (N,))."""
        if self.training and self.init != "random" and not bool(self.cluster_size.any()):
            self._initialise(flat.detach())
        distance = (
            flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.embed + self.embed.pow(2).sum(0, keepdim=True)
        )
        codes = distance.argmin(1)
        quantized = self.lookup(codes)
        if self.training:
            self._ema_update(flat.detach(), codes)
        return quantized, codes

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        return F.embedding(codes, self.embed.t())

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, codes: torch.Tensor) -> None:
        onehot = F.one_hot(codes, self.size).type(flat.dtype)
        stats = distributed.summed(torch.cat([flat.t() @ onehot, onehot.sum(0, keepdim=True)]))
        sums, counts = stats[:-1], stats[-1]
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_avg.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (n + self.size * self.eps) * n
        self.embed.copy_(self.embed_avg / smoothed.unsqueeze(0))
        if self.dead_code_threshold > 0:
            dead = torch.nonzero(self.cluster_size < self.dead_code_threshold).flatten()
            if len(dead):
                self._set_codes(dead, flat, weight=self.dead_code_threshold)

    @torch.no_grad()
    def _initialise(self, flat: torch.Tensor) -> None:
        """Set the codebook from the first training batch (all ranks' vectors), by `init`."""
        if self.init == "data":
            self._set_codes(torch.arange(self.size, device=flat.device), flat, weight=1.0)
            return
        result = kmeans(distributed.all_rows(flat), self.size)
        means, counts = distributed.from_main(result.means), distributed.from_main(result.counts).clamp(min=1.0)
        self.embed.copy_(means.t())
        self.embed_avg.copy_(means.t() * counts)
        self.cluster_size.copy_(counts)

    @torch.no_grad()
    def _set_codes(self, codes: torch.Tensor, flat: torch.Tensor, weight: float) -> None:
        """Move `codes` onto randomly drawn vectors of `flat`, as if each had `weight` members."""
        vectors = distributed.draw_rows(flat, len(codes)).t()
        self.embed[:, codes] = vectors
        self.embed_avg[:, codes] = vectors * weight
        self.cluster_size[codes] = weight


class ResidualQuantizer(nn.Module):
    def __init__(self, dim: int, levels: int, size: int, decay: float = 0.99,
                 init: str = "random", dead_code_threshold: float = 0.0, dropout: float = 0.0):
        super().__init__()
        self.dim, self.size, self.dropout = dim, size, dropout
        self.levels = nn.ModuleList(
            EMACodebook(dim, size, decay, init=init, dead_code_threshold=dead_code_threshold) for _ in range(levels)
        )

    @classmethod
    def from_config(cls, dim: int, section: QuantizerConfig) -> ResidualQuantizer:
        """VQ (one level) or RVQ from `autoencoder.quantizer` (types vq and rvq)."""
        return cls(dim, section.levels, section.codebook_size, section.decay, init=section.init,
                   dead_code_threshold=section.dead_code_threshold, dropout=section.dropout)

    @property
    def level_count(self) -> int:
        return len(self.levels)

    def forward(self, z: torch.Tensor, levels: int | None = None) -> QuantizedResult:
        """Quantise z (B, D, H, W) with the first `levels` levels, in float32. By default all levels,
        or in training with quantizer dropout a random number of them (`training_levels`)."""
        if levels is None and self.training and self.dropout > 0:
            levels = self.training_levels()
        with torch.autocast(z.device.type, enabled=False):
            return self._quantize(z.float(), levels)

    def training_levels(self) -> int:
        """With probability `dropout` a number of levels uniform in 1..L, else L. Both numbers are
        drawn at every call from torch's global (CPU) RNG; every rank draws and rank 0's draw is used."""
        count = len(self.levels)
        draw = torch.stack([torch.rand((), dtype=torch.float64), torch.randint(1, count + 1, ()).double()])
        use, levels = distributed.from_main(draw).tolist()
        return int(levels) if use < self.dropout else count

    def _quantize(self, z: torch.Tensor, levels: int | None) -> QuantizedResult:
        batch, dim, height, width = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, dim)
        residual = flat
        total = torch.zeros_like(flat)
        codes, commitment = [], flat.new_zeros(())
        for codebook in self.levels[:levels]:
            chosen, level_codes = codebook(residual)
            commitment = commitment + (chosen.detach() - residual).pow(2).mean()
            total = total + chosen
            residual = residual - chosen.detach()
            codes.append(level_codes.view(batch, height, width))
        quantized = flat + (total - flat).detach()
        return QuantizedResult(
            quantized=quantized.view(batch, height, width, dim).permute(0, 3, 1, 2),
            codes=torch.stack(codes, 1),
            commitment=commitment,
        )

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, L, H, W) of the first L levels -> sum of their vectors (B, D, H, W)."""
        total = sum(codebook.lookup(codes[:, i]) for i, codebook in enumerate(self.levels[: codes.shape[1]]))
        return total.permute(0, 3, 1, 2)


def codebook_usage(codes: torch.Tensor, size: int) -> dict[str, torch.Tensor]:
    """Per-level code counts (L, size), perplexity (L,) and unused codes (L,) of codes (B, L, H, W)."""
    levels = codes.shape[1]
    counts = torch.stack([torch.bincount(codes[:, i].reshape(-1), minlength=size) for i in range(levels)])
    return usage_from_counts(counts)


def usage_from_counts(counts: torch.Tensor) -> dict[str, torch.Tensor]:
    probs = counts.double() / counts.sum(1, keepdim=True).clamp(min=1)
    entropy = -(probs * torch.log(probs.clamp(min=1e-12))).sum(1)
    return {"counts": counts, "perplexity": torch.exp(entropy), "unused": (counts == 0).sum(1)}
