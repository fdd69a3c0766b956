"""Griffin-Lim: the weight-free vocoder.

The mel is mapped back to a linear magnitude with the mel basis' pseudo-inverse (clamped at 0) and
phases are found by fast Griffin-Lim (Perraudin et al. 2013, momentum 0.99 as librosa). Our log-mel
frames are centred at t * hop + hop / 2 (HiFi-GAN padding), so the torch STFT (centred at t * hop)
runs on the signal delayed by hop / 2, which is undone.
"""

from __future__ import annotations

from pathlib import Path

import torch

from foley.audio.mel import mel_basis
from foley.config import Config, GriffinLimConfig, MelConfig

MAX_LOG_MEL = 20.0


class GriffinLim:
    def __init__(self, mel: MelConfig, sample_rate: int, settings: GriffinLimConfig, seed: int = 0):
        self.mel, self.sample_rate, self.hop_length = mel, sample_rate, mel.hop_length
        self.n_iter, self.momentum, self.seed = settings.n_iter, settings.momentum, seed
        self.name = f"griffinlim(n_iter={settings.n_iter}, momentum={settings.momentum:g})"
        basis = torch.from_numpy(mel_basis(mel, sample_rate)).double()
        self.inverse_basis = torch.linalg.pinv(basis).float()

    @classmethod
    def from_config(cls, config: Config, trained_dir: str | Path | None = None) -> GriffinLim:
        """The run's mel and `vocoder.griffinlim` settings; nothing is trained (trained_dir unused)."""
        return cls(config.mel, config.audio.sample_rate, config.vocoder.griffinlim, seed=config.seed)

    def to(self, device: str | torch.device) -> GriffinLim:
        self.inverse_basis = self.inverse_basis.to(device)
        return self

    @torch.no_grad()
    def __call__(self, mels: torch.Tensor) -> torch.Tensor:
        device = self.inverse_basis.device
        mels = mels.to(device).float().clamp(max=MAX_LOG_MEL)  # exp() of a wild decoder output must not overflow
        magnitude = (self.inverse_basis @ torch.exp(mels)).clamp(min=0)
        frames = magnitude.shape[-1]
        window = torch.hann_window(self.mel.win_length, device=device)
        stft_args = dict(n_fft=self.mel.n_fft, hop_length=self.hop_length, win_length=self.mel.win_length, window=window)
        length = (frames - 1) * self.hop_length
        generator = torch.Generator(device=device).manual_seed(self.seed)
        # one initial phase for every clip, so a clip's audio does not depend on its batch
        phase = torch.rand(magnitude.shape[-2:], generator=generator, device=device) * 2 * torch.pi
        angles = torch.polar(torch.ones_like(magnitude), phase.expand_as(magnitude))
        rebuilt = torch.zeros_like(angles)
        for _ in range(self.n_iter):
            signal = torch.istft(magnitude * angles, length=length, **stft_args)
            previous = rebuilt
            rebuilt = torch.stft(signal, return_complex=True, **stft_args)
            angles = rebuilt - (self.momentum / (1 + self.momentum)) * previous
            angles = torch.sgn(angles)  # z / |z| (0 where z = 0): 6x faster than dividing by abs() here
        signal = torch.istft(magnitude * angles, length=length, **stft_args)
        half = self.hop_length // 2
        return torch.nn.functional.pad(signal, (half, self.hop_length - half))
