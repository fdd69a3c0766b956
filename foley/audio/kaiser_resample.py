"""Band-limited sinc resampling with a Kaiser window, as torchaudio's Resample computes it.

The DCASE 2024 Task 7 fadtk fork resamples every clip with
`torchaudio.transforms.Resample(orig, new, lowpass_filter_width=64, rolloff=0.9475937167399596,
resampling_method="sinc_interp_kaiser", beta=14.769656459379492)` (the constants of the old resampy
"kaiser_best" filter). torchaudio is not a dependency of foley; this module computes the same thing:
- both rates divided by their gcd (44,100 -> 32,000 becomes 441 -> 320);
- cutoff base = min(orig, new) * rolloff, half-width `width` = ceil(lowpass_filter_width * orig / base)
  input samples;
- output phase j (0 <= j < new) at input offset i (-width <= i < width + orig) takes the tap
  h(t) = (base / orig) sinc(t) I0(beta sqrt(1 - (t / w)^2)) / I0(beta), t = (i / orig - j / new) * base,
  t clamped to [-w, w], w = lowpass_filter_width; j / new is rounded to float32 first (torchaudio
  divides an integer tensor), the taps are computed in float64 and stored as float32;
- the signal is zero-padded by width before and width + orig after, convolved with stride orig in
  float32 (output sample k * new + j from the j-th kernel), and cut to ceil(new * L / orig) samples.
Equal rates return the input unchanged. Checked bit-equal to torchaudio 2.11's transform (its kernel
and apply functions) for 8, 11.025, 16, 22.05, 44.1, 48 and 96 kHz to 32 kHz; the tests check it
against the formula evaluated directly.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F

LOWPASS_FILTER_WIDTH = 64
ROLLOFF = 0.9475937167399596
BETA = 14.769656459379492


def reduced_rates(orig: int, new: int) -> tuple[int, int]:
    if orig <= 0 or new <= 0:
        raise ValueError(f"sample rates must be positive, got {orig} -> {new}")
    divisor = math.gcd(orig, new)
    return orig // divisor, new // divisor


@functools.lru_cache(maxsize=8)
def kaiser_kernel(orig: int, new: int) -> tuple[torch.Tensor, int]:
    """The taps (new, 1, 2 * width + orig) float32 for reduced rates, and width.

    Evaluated in float64 in torchaudio's order of operations (sin(pi t) / (pi t), then times
    window * scale), with beta held in float32 and I0(beta) evaluated in float32 as torchaudio holds
    them, so that the float32 taps come out bit-equal to its transform's.
    """
    base = min(orig, new) * ROLLOFF
    width = math.ceil(LOWPASS_FILTER_WIDTH * orig / base)
    offsets = torch.arange(-width, width + orig, dtype=torch.float64) / orig
    phases = (-torch.arange(new, dtype=torch.float32) / new).to(torch.float64)  # j / new rounded to float32
    t = ((phases[:, None] + offsets[None]) * base).clamp(-LOWPASS_FILTER_WIDTH, LOWPASS_FILTER_WIDTH)
    beta = torch.tensor(BETA, dtype=torch.float32)
    window = torch.i0(beta * torch.sqrt(1 - (t / LOWPASS_FILTER_WIDTH) ** 2)) / torch.i0(beta)
    angle = t * math.pi
    sinc = torch.where(angle == 0, torch.ones_like(angle), angle.sin() / angle)
    taps = sinc * (window * (base / orig))
    return taps[:, None].to(torch.float32), width


def resample_kaiser(samples: np.ndarray, orig: int, new: int) -> np.ndarray:
    """A mono clip (L,) from orig to new Hz -> float32 (ceil(new * L / orig),), computed in float32."""
    x = np.asarray(samples, dtype=np.float32)
    if orig == new:
        return x
    orig, new = reduced_rates(orig, new)
    kernel, width = kaiser_kernel(orig, new)
    padded = F.pad(torch.from_numpy(x)[None, None], (width, width + orig))
    out = F.conv1d(padded, kernel, stride=orig)[0].transpose(0, 1).reshape(-1)
    return out[: math.ceil(new * x.size / orig)].numpy()
