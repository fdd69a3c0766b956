"""The log-mel front end of the PANNs models, in the module layout of torchlibrosa (which PANNs uses).

Same formulas and parameter names as torchlibrosa's Spectrogram and LogmelFilterBank, so the
official checkpoints load into it strictly (their STFT kernels and mel matrix are stored weights):
- `stft.conv_real` / `stft.conv_imag`: Conv1d(1, n_fft // 2 + 1, n_fft, stride hop, no bias) whose
  kernels are the real and imaginary parts of the DFT of a periodic Hann window,
  w[n] cos(2 pi k n / N) and -w[n] sin(2 pi k n / N);
- center=True: the waveform is reflect-padded by n_fft // 2 on each side before framing;
- the power spectrogram real^2 + imag^2, shaped (B, 1, frames, n_fft // 2 + 1);
- `melW` (n_fft // 2 + 1, n_mels): librosa's Slaney mel filter bank (htk=False, norm='slaney');
- 10 log10(max(mel, 1e-10)) with ref 1.0 and no top_db clipping.
"""

from __future__ import annotations

import librosa
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

AMIN = 1e-10  # the power floor before the log (torchlibrosa's amin)


def dft_kernels(n_fft: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Real and imaginary STFT kernels (n_fft // 2 + 1, 1, n_fft), float32, computed in float64."""
    n = np.arange(n_fft)
    k = np.arange(n_fft // 2 + 1)[:, None]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / n_fft)  # periodic Hann
    angle = 2 * np.pi * k * n / n_fft
    real, imag = np.cos(angle) * window, -np.sin(angle) * window
    return torch.from_numpy(real[:, None].astype(np.float32)), torch.from_numpy(imag[:, None].astype(np.float32))


class STFT(nn.Module):
    """Convolutional STFT: (B, L) -> real and imaginary parts (B, 1, frames, n_fft // 2 + 1)."""

    def __init__(self, n_fft: int, hop: int) -> None:
        super().__init__()
        self.n_fft = n_fft
        bins = n_fft // 2 + 1
        self.conv_real = nn.Conv1d(1, bins, n_fft, stride=hop, bias=False)
        self.conv_imag = nn.Conv1d(1, bins, n_fft, stride=hop, bias=False)
        real, imag = dft_kernels(n_fft)
        with torch.no_grad():
            self.conv_real.weight.copy_(real)
            self.conv_imag.weight.copy_(imag)

    def forward(self, waveform: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.pad(waveform[:, None], (self.n_fft // 2, self.n_fft // 2), mode="reflect")
        return self.conv_real(x).transpose(1, 2)[:, None], self.conv_imag(x).transpose(1, 2)[:, None]


class Spectrogram(nn.Module):
    """(B, L) -> power spectrogram (B, 1, frames, n_fft // 2 + 1); the STFT sits under `stft.`."""

    def __init__(self, n_fft: int, hop: int) -> None:
        super().__init__()
        self.stft = STFT(n_fft, hop)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        real, imag = self.stft(waveform)
        return real**2 + imag**2


class LogmelFilterBank(nn.Module):
    """Power spectrogram (..., n_fft // 2 + 1) -> decibels of the mel bands (..., n_mels)."""

    def __init__(self, sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> None:
        super().__init__()
        bank = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
        self.melW = nn.Parameter(torch.from_numpy(bank.T.astype(np.float32)), requires_grad=False)

    def forward(self, power: torch.Tensor) -> torch.Tensor:
        return 10.0 * torch.log10(torch.clamp(power @ self.melW, min=AMIN))
