"""Causal attention over strictly earlier positions and dropout, as the reference computes them.

The reference (``foley.models.pixelsnail.CausalAttention``) builds the full N x N score matrix,
fills the current and later positions with -1e4 (their softmax weight underflows to exactly 0),
multiplies the weights by 0 on the first row (which has no earlier position: its output is 0),
applies dropout to the weights and multiplies by the values. Equivalently: query i >= 1 attends
keys 0 .. i-1 with an ordinary causal (diagonal included) attention of the queries 1 .. N-1 over
the keys and values 0 .. N-2, and row 0 is zero. That form fits fused kernels
(``scaled_dot_product_attention`` with ``is_causal``; with dropout inside it on CUDA). torch's CPU
kernel has no dropout, so on the CPU with dropout the rows are taken in chunks, each against the
keys up to its last row only (half the score matrix), with the weights' dropout drawn per chunk.

Without dropout on the CPU the fused kernel runs in float32 even under bf16 autocast (its output
is cast back to the inputs' dtype): torch's CPU flash kernel is slower in bf16 than in float32 at
these head widths, its backward most of all (`foley bench train --dropout 0 --amp`, README), and
float32 is the more exact. The chunked path keeps autocast's bf16 products, faster than float32 ones.

Dropout keeps each value with probability 1 - p (within 2^-24: see ``keep_mask``) and scales it
by 1 / (1 - p), as torch's; only the random stream differs from the reference's (tests check the
keep rate and the expectation).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

CHUNK_ROWS = 256  # query rows per chunk on the CPU path (bounds its score block to rows x keys)


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """``F.dropout(x, p, training)``: each value kept with probability 1 - p and scaled by 1 / (1 - p)."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu":
        return F.dropout(x, p, True)
    return x * keep_mask(x.shape, p, 1.0 / (1.0 - p))


def keep_mask(shape: torch.Size, p: float, value: float = 1.0) -> torch.Tensor:
    """A CPU float mask, each entry ``value`` with probability 1 - p and 0 otherwise: float32
    uniforms (multiples of 2^-24) below 1 - p, so the probability is 1 - p within 2^-24.

    The uniforms come from numpy's PCG64 (about twice as fast as torch's CPU generator), seeded
    by one draw from torch's default generator, so torch.manual_seed and the RNG state that
    checkpoints keep decide the masks. A float mask multiplies faster than a bool one selects."""
    seed = int(torch.empty((), dtype=torch.int64).random_())
    uniforms = np.random.Generator(np.random.PCG64(seed)).random(tuple(shape), dtype=np.float32)
    mask = torch.from_numpy(uniforms).lt_(1.0 - p)
    return mask if value == 1.0 else mask.mul_(value)


def strictly_causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, p: float) -> torch.Tensor:
    """(B, heads, N, d) queries, keys, values -> (B, heads, N, d): position i attends positions
    < i with attention dropout ``p`` on the weights; position 0 gets zeros."""
    q, k, v = q[:, :, 1:], k[:, :, :-1], v[:, :, :-1]
    if q.device.type != "cpu":
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
    elif p == 0.0:
        wide = torch.promote_types(q.dtype, torch.float32)  # bf16 -> float32; float64 stays float64
        with torch.autocast("cpu", enabled=False):
            out = F.scaled_dot_product_attention(q.to(wide), k.to(wide), v.to(wide), is_causal=True).to(q.dtype)
    else:
        out = _chunked_with_dropout(q, k, v, p)
    return F.pad(out, (0, 0, 1, 0))


def _chunked_with_dropout(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, p: float) -> torch.Tensor:
    """Causal (diagonal included) attention with dropout, CHUNK_ROWS query rows at a time."""
    batch, heads, positions, width = q.shape
    q = (q * width**-0.5).reshape(batch * heads, positions, width)
    k = k.reshape(batch * heads, positions, width)
    v = v.reshape(batch * heads, positions, width)
    later = torch.full((positions, positions), float("-inf"), dtype=q.dtype, device=q.device).triu(1)  # -inf above the diagonal
    outs = []
    for start in range(0, positions, CHUNK_ROWS):
        end = min(positions, start + CHUNK_ROWS)
        weights = torch.softmax(torch.baddbmm(later[start:end, :end], q[:, start:end], k[:, :end].transpose(1, 2)), dim=-1)
        outs.append(torch.bmm(weights * keep_mask(weights.shape, p), v[:, :end]))
    return torch.cat(outs, 1).mul_(1.0 / (1.0 - p)).view(batch, heads, positions, width)
