"""Shape arithmetic shared by the config checks, the autoencoder and the code maps.

Strides are (freq, time) per strided encoder layer. The encoder pads its input up to a multiple
of the total stride on each axis and the decoder crops back, so every (n_mels, frames) works.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Stride = tuple[int, int]


def mel_frames(num_samples: int, n_fft: int, hop_length: int) -> int:
    """Frames of the HiFi-GAN log-mel: reflect-pad (n_fft - hop) / 2 each side, center=False."""
    pad = (n_fft - hop_length) // 2
    return (num_samples + 2 * pad - n_fft) // hop_length + 1


def total_stride(strides: Sequence[Stride]) -> Stride:
    return math.prod(s[0] for s in strides), math.prod(s[1] for s in strides)


def padded_shape(shape: Stride, strides: Sequence[Stride]) -> Stride:
    """The input shape rounded up to a multiple of the total stride on each axis."""
    sf, st = total_stride(strides)
    return math.ceil(shape[0] / sf) * sf, math.ceil(shape[1] / st) * st


def latent_shape(shape: Stride, strides: Sequence[Stride]) -> Stride:
    """Latent (height, width) of one quantiser level for a (n_mels, frames) input."""
    sf, st = total_stride(strides)
    return math.ceil(shape[0] / sf), math.ceil(shape[1] / st)


def stacked_shape(latent: Stride, levels: int, stack: str = "freq") -> Stride:
    """Shape of the single map the prior models: levels stacked along frequency (`freq`, `interleave`),
    transposed for `time` (foley.quantize.stacking)."""
    rows, cols = latent[0] * levels, latent[1]
    return (cols, rows) if stack == "time" else (rows, cols)
