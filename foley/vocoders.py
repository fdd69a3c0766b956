"""Vocoders: one interface, log-mel batch (B, n_mels, T) -> waveform batch (B, T * hop).

`GriffinLim` needs no weights: the mel is mapped back to a linear magnitude with the mel basis'
pseudo-inverse (clamped at 0) and phases are found by fast Griffin-Lim (Perraudin et al. 2013,
momentum 0.99 as librosa). Our log-mel frames are centred at t * hop + hop / 2 (HiFi-GAN padding),
so the torch STFT (centred at t * hop) runs on the signal delayed by hop / 2, which is undone.
"""

from __future__ import annotations

from typing import Protocol

import torch

from foley.audio import mel_basis
from foley.config import Config, GriffinLimConfig, MelConfig

MAX_LOG_MEL = 20.0


class Vocoder(Protocol):
    name: str
    sample_rate: int
    hop_length: int

    def __call__(self, mels: torch.Tensor) -> torch.Tensor:
        """Log-mels (B, n_mels, T) -> waveforms (B, T * hop_length), on the mels' device."""


class GriffinLim:
    def __init__(self, mel: MelConfig, sample_rate: int, settings: GriffinLimConfig, seed: int = 0):
        self.mel, self.sample_rate, self.hop_length = mel, sample_rate, mel.hop_length
        self.n_iter, self.momentum, self.seed = settings.n_iter, settings.momentum, seed
        self.name = f"griffinlim(n_iter={settings.n_iter}, momentum={settings.momentum:g})"
        basis = torch.from_numpy(mel_basis(mel, sample_rate)).double()
        self.inverse_basis = torch.linalg.pinv(basis).float()

    @torch.no_grad()
    def __call__(self, mels: torch.Tensor) -> torch.Tensor:
        device = mels.device
        mels = mels.float().clamp(max=MAX_LOG_MEL)  # exp() of a wild decoder output must not overflow
        magnitude = (self.inverse_basis.to(device) @ torch.exp(mels)).clamp(min=0)
        frames = magnitude.shape[-1]
        window = torch.hann_window(self.mel.win_length, device=device)
        stft_args = dict(n_fft=self.mel.n_fft, hop_length=self.hop_length, win_length=self.mel.win_length, window=window)
        length = (frames - 1) * self.hop_length
        generator = torch.Generator(device=device).manual_seed(self.seed)
        phase = torch.rand(magnitude.shape, generator=generator, device=device) * 2 * torch.pi
        angles = torch.polar(torch.ones_like(magnitude), phase)
        rebuilt = torch.zeros_like(angles)
        for _ in range(self.n_iter):
            signal = torch.istft(magnitude * angles, length=length, **stft_args)
            previous = rebuilt
            rebuilt = torch.stft(signal, return_complex=True, **stft_args)
            angles = rebuilt - (self.momentum / (1 + self.momentum)) * previous
            angles = angles / (angles.abs() + 1e-16)
        signal = torch.istft(magnitude * angles, length=length, **stft_args)
        half = self.hop_length // 2
        return torch.nn.functional.pad(signal, (half, self.hop_length - half))


def build_vocoder(config: Config) -> Vocoder:
    """The vocoder the config names (weights, when a vocoder has them, load on the CPU)."""
    if config.vocoder.type == "griffinlim":
        return GriffinLim(config.mel, config.audio.sample_rate, config.vocoder.griffinlim, seed=config.seed)
    raise ValueError(f"unknown vocoder {config.vocoder.type!r}")
