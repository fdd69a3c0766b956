"""Vocoders: one interface, log-mel batch (B, n_mels, T) -> waveform batch (B, T * hop).

`build_vocoder` turns the config's vocoder section into one: Griffin-Lim, an official HiFi-GAN
checkpoint the user gives, or the newest generator the train_vocoder stage wrote. A HiFi-GAN must
take exactly the run's mel (`check_mel_settings`). Vocoders compute where `.to(device)` put them.

`GriffinLim` needs no weights: the mel is mapped back to a linear magnitude with the mel basis'
pseudo-inverse (clamped at 0) and phases are found by fast Griffin-Lim (Perraudin et al. 2013,
momentum 0.99 as librosa). Our log-mel frames are centred at t * hop + hop / 2 (HiFi-GAN padding),
so the torch STFT (centred at t * hop) runs on the signal delayed by hop / 2, which is undone.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from foley.audio.mel import mel_basis
from foley.config import Config, GriffinLimConfig, MelConfig
from foley.models.hifigan import HiFiGANConfig, HiFiGANVocoder, load_generator
from foley.util.errors import CheckpointError, ConfigError
from foley.vocoders.hifigan_training import CONFIG_NAME, checkpoint_paths, latest_checkpoint_steps

MAX_LOG_MEL = 20.0

# The DCASE 2023 Task 7 baseline's checkpoint/hifigan/hifigan_config.json: HiFi-GAN V1 at 22,050 Hz,
# 80 mels, fmax 8000 (keys the official code does not read, such as num_gpus, left out).
DCASE_HIFIGAN: dict[str, Any] = {
    "resblock": "1", "batch_size": 16, "learning_rate": 0.0002, "adam_b1": 0.8, "adam_b2": 0.99,
    "lr_decay": 0.999, "seed": 1234, "upsample_rates": [8, 8, 2, 2], "upsample_kernel_sizes": [16, 16, 4, 4],
    "upsample_initial_channel": 512, "resblock_kernel_sizes": [3, 7, 11],
    "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]], "segment_size": 8192, "num_mels": 80,
    "n_fft": 1024, "hop_size": 256, "win_size": 1024, "sampling_rate": 22050, "fmin": 0, "fmax": 8000,
    "fmax_for_loss": None,
}
# HiFi-GAN config key -> the run's config key holding the same mel setting
MEL_KEYS = {
    "num_mels": "mel.n_mels", "n_fft": "mel.n_fft", "hop_size": "mel.hop_length", "win_size": "mel.win_length",
    "fmin": "mel.fmin", "fmax": "mel.fmax", "sampling_rate": "audio.sample_rate",
}


class Vocoder(Protocol):
    name: str
    sample_rate: int
    hop_length: int

    def __call__(self, mels: torch.Tensor) -> torch.Tensor:
        """Log-mels (B, n_mels, T) -> waveforms (B, T * hop_length), on the vocoder's device."""

    def to(self, device: str | torch.device) -> Vocoder:
        """Compute on `device` from now on; returns the vocoder."""


class GriffinLim:
    def __init__(self, mel: MelConfig, sample_rate: int, settings: GriffinLimConfig, seed: int = 0):
        self.mel, self.sample_rate, self.hop_length = mel, sample_rate, mel.hop_length
        self.n_iter, self.momentum, self.seed = settings.n_iter, settings.momentum, seed
        self.name = f"griffinlim(n_iter={settings.n_iter}, momentum={settings.momentum:g})"
        basis = torch.from_numpy(mel_basis(mel, sample_rate)).double()
        self.inverse_basis = torch.linalg.pinv(basis).float()

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
            angles = angles / (angles.abs() + 1e-16)
        signal = torch.istft(magnitude * angles, length=length, **stft_args)
        half = self.hop_length // 2
        return torch.nn.functional.pad(signal, (half, self.hop_length - half))


def build_vocoder(config: Config, trained_dir: str | Path | None = None) -> Vocoder:
    """The vocoder the config names, on the CPU (move it with `.to(device)`).

    A HiFi-GAN comes from vocoder.hifigan.checkpoint + config, or, when those are null, from the
    newest g_ file and config.json that training wrote into `trained_dir`.
    """
    section = config.vocoder
    if section.type == "griffinlim":
        return GriffinLim(config.mel, config.audio.sample_rate, section.griffinlim, seed=config.seed)
    if section.type == "hifigan":
        checkpoint, config_path = hifigan_files(config, trained_dir)
        hifigan = HiFiGANConfig.from_json(config_path)
        check_mel_settings(hifigan, config, f"HiFi-GAN config '{config_path}'")
        generator = load_generator(checkpoint, hifigan)
        return HiFiGANVocoder(generator, name=f"hifigan({checkpoint})", batch_size=section.batch_size)
    raise ValueError(f"unknown vocoder {section.type!r}")


def hifigan_files(config: Config, trained_dir: str | Path | None) -> tuple[Path, Path]:
    """(generator file, config JSON) of the configured HiFi-GAN."""
    given = config.vocoder.hifigan
    if given.checkpoint is not None and given.config is not None:
        return Path(given.checkpoint), Path(given.config)
    if trained_dir is None:
        raise ConfigError("vocoder.hifigan.checkpoint is null, so the HiFi-GAN is the one a run trains; "
                          "load it from a run folder, or set vocoder.hifigan.checkpoint and .config")
    steps = latest_checkpoint_steps(trained_dir)
    if steps is None:
        raise CheckpointError(f"no trained HiFi-GAN in '{trained_dir}' (no g_<step>/do_<step> pair); run the "
                              "train_vocoder stage (foley run --stages train_vocoder), or set vocoder.hifigan.checkpoint")
    return checkpoint_paths(trained_dir, steps)[0], Path(trained_dir) / CONFIG_NAME


def check_mel_settings(hifigan: HiFiGANConfig, config: Config, source: str) -> None:
    """The HiFi-GAN's input mel must be the run's mel: one ConfigError listing every mismatching key."""
    wrong = [
        f"{key} {getattr(hifigan, key)!r} where the run has {run_key} {config.section(run_key)!r}"
        for key, run_key in MEL_KEYS.items()
        if getattr(hifigan, key) is None or float(getattr(hifigan, key)) != float(config.section(run_key))
    ]
    if wrong:
        raise ConfigError(f"{source} does not take the run's mel: {'; '.join(wrong)}. Use a HiFi-GAN trained on "
                          "this mel, or set the run's mel/audio keys to the vocoder's")


def vocode_all(vocoder: Vocoder, mels: Sequence[np.ndarray], batch_size: int) -> list[np.ndarray]:
    """Waveforms of mels (n_mels, T_i), in input order, vocoded in batches of up to `batch_size` mels of one length."""
    waves: list[np.ndarray] = [np.empty(0, np.float32)] * len(mels)
    by_length = sorted(range(len(mels)), key=lambda i: mels[i].shape[-1])
    for _, same_length in itertools.groupby(by_length, key=lambda i: mels[i].shape[-1]):
        group = list(same_length)
        for first in range(0, len(group), batch_size):
            batch = group[first : first + batch_size]
            stacked = torch.from_numpy(np.stack([mels[i] for i in batch]).astype(np.float32))
            for i, wave in zip(batch, vocoder(stacked).float().cpu().numpy()):
                waves[i] = wave
    return waves
