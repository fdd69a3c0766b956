"""Vocoders: one interface, log-mel batch (B, n_mels, T) -> waveform batch (B, T * hop).

`build_vocoder` turns the config's `vocoder.type` into one through the registry
(foley.registry.VOCODERS): Griffin-Lim (foley.vocoders.griffinlim) or HiFi-GAN
(foley.vocoders.hifigan). Vocoders compute where `.to(device)` put them.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from foley.config import Config
from foley.registry import VOCODERS


class Vocoder(Protocol):
    name: str
    sample_rate: int
    hop_length: int

    def __call__(self, mels: torch.Tensor) -> torch.Tensor:
        """Log-mels (B, n_mels, T) -> waveforms (B, T * hop_length), on the vocoder's device."""

    def to(self, device: str | torch.device) -> Vocoder:
        """Compute on `device` from now on; returns the vocoder."""

    @classmethod
    def from_config(cls, config: Config, trained_dir: str | Path | None = None) -> Vocoder:
        """The vocoder the run's config describes (weights from files it names, or trained into
        `trained_dir` by the run), on the CPU."""


def build_vocoder(config: Config, trained_dir: str | Path | None = None) -> Vocoder:
    """The vocoder `vocoder.type` names, on the CPU (move it with `.to(device)`)."""
    return VOCODERS.get(config.vocoder.type).from_config(config, trained_dir)


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
