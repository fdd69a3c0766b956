"""What a configuration's codes spend, per quantizer level: bitrate, entropy, usage and perplexity.

For code maps (B, L, h, w) of clips lasting `seconds`:
- bitrate (fixed-length codes): every position of a level costs log2(codebook size) bits, so a
  level costs h * w * log2(size) / seconds bits per second, and the first k levels k times that;
- entropy: level l's empirical entropy H_l = -sum_c p_l(c) log2 p_l(c) in bits per code, over the
  frequencies p_l of its codes: what an ideal coder of independent codes would spend, and
  H_l * h * w / seconds its bitrate;
- perplexity 2^H_l (the number of equally used codes with that entropy) and unused codes.
"""

from __future__ import annotations

import math

import torch

from foley.quantize.ema import codebook_usage


def entropy_bits(counts: torch.Tensor) -> list[float]:
    """Empirical entropy in bits of each row of code counts (L, size)."""
    probs = counts.double() / counts.sum(1, keepdim=True).clamp(min=1)
    return [float(-(p[p > 0] * torch.log2(p[p > 0])).sum()) for p in probs]


def code_statistics(codes: torch.Tensor, size: int, seconds: float) -> dict:
    """Bitrate, entropy, perplexity and unused codes per level of codes (B, L, h, w), and their totals."""
    usage = codebook_usage(codes, size)
    entropy = entropy_bits(usage["counts"])
    codes_per_second = codes.shape[2] * codes.shape[3] / seconds
    level_bitrate = codes_per_second * math.log2(size)
    return {
        "bitrate_bps": codes.shape[1] * level_bitrate,
        "bitrate_bps_per_level": [level_bitrate] * codes.shape[1],
        "entropy_bits_per_code": entropy,
        "entropy_bitrate_bps": sum(entropy) * codes_per_second,
        "entropy_bitrate_bps_per_level": [bits * codes_per_second for bits in entropy],
        "perplexity": [float(p) for p in usage["perplexity"]],
        "unused_codes": [int(u) for u in usage["unused"]],
    }
