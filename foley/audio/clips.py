"""Audio files in and out, the clip policy, and the one log-mel function.

The log-mel is HiFi-GAN's input formula (and so the DCASE baseline's): reflect-pad
(n_fft - hop) / 2 samples each side, STFT with a periodic Hann window and center=False,
magnitude sqrt(re^2 + im^2 + 1e-9), slaney mel basis, natural log of the magnitude clamped at 1e-5.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F
from scipy.signal import resample_poly

from foley.config import MelConfig
from foley.util.atomic import atomic_path
from foley.util.errors import AudioError

RESAMPLE_METHOD = "scipy.signal.resample_poly (polyphase FIR, Kaiser window beta 5.0)"
LOG_CLAMP = 1e-5
MAGNITUDE_EPS = 1e-9


@dataclass(frozen=True)
class Clip:
    """A clip made to the policy: mono float32 at the target rate and length."""

    audio: np.ndarray
    conversions: tuple[str, ...]


def read_clip(path: str | Path, sample_rate: int, num_samples: int) -> Clip:
    """Read a sound file and apply the policy: stereo -> mean, resample, pad or crop.

    Raises AudioError with the reason when the file cannot be used.
    """
    path = Path(path)
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:  # libsndfile reports every unreadable file through its own error types
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise AudioError(f"unreadable: {reason}") from None
    if data.shape[0] == 0:
        raise AudioError("zero-length: the file holds no samples")
    if not np.isfinite(data).all():
        raise AudioError("non-finite samples (NaN or infinity)")
    conversions = []
    if data.shape[1] > 1:
        conversions.append(f"{data.shape[1]} channels -> mono (mean)")
    audio = data.mean(axis=1, dtype=np.float32)
    if rate != sample_rate:
        audio = resample(audio, rate, sample_rate)
        conversions.append(f"resampled {rate} -> {sample_rate} Hz")
    audio, change = fit_length(audio, num_samples)
    if change:
        conversions.append(change)
    return Clip(audio=audio, conversions=tuple(conversions))


def resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    g = math.gcd(rate_in, rate_out)
    return resample_poly(audio, rate_out // g, rate_in // g).astype(np.float32)


def fit_length(audio: np.ndarray, num_samples: int) -> tuple[np.ndarray, str | None]:
    """Zero-pad or crop to num_samples; also returns the change made, if any."""
    n = audio.shape[-1]
    if n < num_samples:
        return np.pad(audio, (0, num_samples - n)), f"zero-padded {n} -> {num_samples} samples"
    if n > num_samples:
        return audio[:num_samples], f"cropped {n} -> {num_samples} samples"
    return audio, None


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write 16-bit PCM mono atomically (temporary file + rename); samples are clipped to [-1, 1]."""
    with atomic_path(path) as tmp:
        sf.write(str(tmp), to_pcm16(audio), sample_rate, subtype="PCM_16", format="WAV")


def to_pcm16(audio: np.ndarray) -> np.ndarray:
    """Float samples -> the int16 values written to disk: round(clip(x, -1, 1) * 32767)."""
    return np.round(np.clip(np.asarray(audio, dtype=np.float64), -1.0, 1.0) * 32767).astype(np.int16)


# ---------------------------------------------------------------------------------------------
# Log-mel


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
