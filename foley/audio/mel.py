"""The one log-mel function: HiFi-GAN's input formula (and so the DCASE baseline's).

Reflect-pad (n_fft - hop) / 2 samples each side, STFT with a periodic Hann window and center=False,
magnitude sqrt(re^2 + im^2 + 1e-9), slaney mel basis, natural log of the magnitude clamped at 1e-5.
"""

from __future__ import annotations

import functools

import librosa
import numpy as np
import torch
import torch.nn.functional as F

from foley.config import MelConfig

LOG_CLAMP = 1e-5
MAGNITUDE_EPS = 1e-9


@functools.lru_cache(maxsize=8)
def mel_basis(mel: MelConfig, sample_rate: int) -> np.ndarray:
    """The slaney-normalised (n_mels, n_fft // 2 + 1) filter bank HiFi-GAN uses (librosa's default)."""
    return librosa.filters.mel(
        sr=sample_rate, n_fft=mel.n_fft, n_mels=mel.n_mels, fmin=mel.fmin, fmax=mel.fmax
    ).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _mel_tensors(mel: MelConfig, sample_rate: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    basis = torch.from_numpy(mel_basis(mel, sample_rate)).to(device)
    window = torch.hann_window(mel.win_length, device=device)
    return basis, window


def log_mel(audio: torch.Tensor, mel: MelConfig, sample_rate: int) -> torch.Tensor:
    """Log-mel of a batch of waveforms (B, T) -> (B, n_mels, frames), on the audio's device.

    Computed in float32 whatever the input dtype.
    """
    if audio.dim() == 1:
        return log_mel(audio[None], mel, sample_rate)[0]
    audio = audio.float()
    basis, window = _mel_tensors(mel, sample_rate, audio.device)
    pad = (mel.n_fft - mel.hop_length) // 2
    padded = F.pad(audio[:, None], (pad, pad), mode="reflect")[:, 0]
    spec = torch.stft(
        padded,
        mel.n_fft,
        hop_length=mel.hop_length,
        win_length=mel.win_length,
        window=window,
        center=False,
        normalized=False,
        onesided=True,
        return_complex=True,
    )
    magnitude = torch.sqrt(spec.real.pow(2) + spec.imag.pow(2) + MAGNITUDE_EPS)
    return torch.log(torch.clamp(basis @ magnitude, min=LOG_CLAMP))
