"""VGGish's log-mel front end, batched in torch (CPU or GPU).

The formulas of the AudioSet VGGish release, which the official DCASE 2023 evaluator and
torchvggish both use:
- frames of 400 samples (25 ms at 16 kHz) every 160 samples (10 ms), no padding, partial frames dropped;
- a periodic Hann window, the magnitude of a 512-point real FFT (each frame zero-padded to 512);
- 64 triangular bands on the HTK mel scale 1127 ln(1 + f / 700), spaced evenly in mel from 125 to
  7,500 Hz, the DC bin weighted zero;
- the natural log of (mel + 0.01);
- examples of 96 consecutive frames (0.96 s) without overlap, partial examples dropped.
Everything is computed in float64, as the numpy original does.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from foley.util.errors import FoleyError

SAMPLE_RATE = 16000
FRAME_SAMPLES = 400
HOP_SAMPLES = 160
FFT_SIZE = 512
NUM_BANDS = 64
MEL_LOW_HZ = 125.0
MEL_HIGH_HZ = 7500.0
LOG_OFFSET = 0.01
EXAMPLE_FRAMES = 96
EXAMPLE_SAMPLES = FRAME_SAMPLES + (EXAMPLE_FRAMES - 1) * HOP_SAMPLES  # 15,600: the samples one example reads
EXAMPLE_HOP_SAMPLES = EXAMPLE_FRAMES * HOP_SAMPLES  # 15,360: 0.96 s between examples


def htk_mel(hz: np.ndarray | float) -> np.ndarray:
    return 1127.0 * np.log1p(np.asarray(hz, dtype=np.float64) / 700.0)


@functools.lru_cache(maxsize=1)
def mel_weights() -> np.ndarray:
    """The (FFT_SIZE // 2 + 1, NUM_BANDS) matrix taking FFT magnitudes to mel bands."""
    bin_mels = htk_mel(np.linspace(0.0, SAMPLE_RATE / 2, FFT_SIZE // 2 + 1))[:, None]
    edges = np.linspace(htk_mel(MEL_LOW_HZ), htk_mel(MEL_HIGH_HZ), NUM_BANDS + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bin_mels - lower) / (center - lower)
    falling = (upper - bin_mels) / (upper - center)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0] = 0.0
    return weights


@functools.lru_cache(maxsize=4)
def _constants(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    window = torch.hann_window(FRAME_SAMPLES, periodic=True, dtype=torch.float64, device=device)
    return window, torch.from_numpy(mel_weights()).to(device)


def log_mel(waveforms: torch.Tensor) -> torch.Tensor:
    """Log-mel of waveforms (B, T) at 16 kHz -> (B, frames, NUM_BANDS) float64, on their device."""
    if waveforms.shape[-1] < FRAME_SAMPLES:
        raise FoleyError(f"a waveform of {waveforms.shape[-1]} samples is shorter than one {FRAME_SAMPLES}-sample frame")
    window, weights = _constants(waveforms.device)
    frames = waveforms.to(torch.float64).unfold(-1, FRAME_SAMPLES, HOP_SAMPLES)
    magnitude = torch.fft.rfft(frames * window, n=FFT_SIZE).abs()
    return torch.log(magnitude @ weights + LOG_OFFSET)


def frame_examples(log_mels: torch.Tensor) -> torch.Tensor:
    """(B, frames, NUM_BANDS) -> (B, examples, EXAMPLE_FRAMES, NUM_BANDS), non-overlapping."""
    return log_mels.unfold(1, EXAMPLE_FRAMES, EXAMPLE_FRAMES).transpose(-1, -2)


def waveform_examples(waveforms: torch.Tensor) -> torch.Tensor:
    """Waveforms (B, T) at 16 kHz -> examples (B, examples, 96, 64), as VGGish's own input code frames them."""
    return frame_examples(log_mel(waveforms))
