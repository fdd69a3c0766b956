"""HiFi-GAN as the run's vocoder: an official checkpoint the user gives, or the newest generator the
train_vocoder stage wrote; either must take exactly the run's mel (`check_mel_settings`).
The network and its official checkpoint format live in foley.models.hifigan.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import torch

from foley.config import Config
from foley.models.hifigan import Generator, HiFiGANConfig, load_generator
from foley.util.device import synchronize
from foley.util.errors import CheckpointError, ConfigError
from foley.vocoders.hifigan_files import CONFIG_NAME, checkpoint_paths, latest_checkpoint_steps

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


class HiFiGANVocoder:
    """Batched mel -> waveform with a folded, frozen copy of a generator; device set by `.to(device)`.

    `batch_size` (None: all at once) caps the mels per generator call."""

    def __init__(self, generator: Generator, name: str = "hifigan", batch_size: int | None = None) -> None:
        self.generator = copy.deepcopy(generator).eval()
        self.generator.remove_weight_norm()
        self.generator.requires_grad_(False)
        self.config = generator.config
        self.name, self.batch_size = name, batch_size

    @classmethod
    def from_config(cls, config: Config, trained_dir: str | Path | None = None) -> HiFiGANVocoder:
        """The given checkpoint (vocoder.hifigan.checkpoint + config), or the newest generator that
        training wrote into `trained_dir`; its mel settings must be the run's."""
        checkpoint, config_path = hifigan_files(config, trained_dir)
        hifigan = HiFiGANConfig.from_json(config_path)
        check_mel_settings(hifigan, config, f"HiFi-GAN config '{config_path}'")
        generator = load_generator(checkpoint, hifigan)
        return cls(generator, name=f"hifigan({checkpoint})", batch_size=config.vocoder.batch_size)

    @classmethod
    def from_files(cls, checkpoint_path: str | Path, config_path: str | Path,
                   batch_size: int | None = None) -> HiFiGANVocoder:
        generator = load_generator(checkpoint_path, HiFiGANConfig.from_json(config_path))
        return cls(generator, name=f"hifigan({Path(checkpoint_path).name})", batch_size=batch_size)

    @property
    def sample_rate(self) -> int:
        return self.config.sampling_rate

    @property
    def hop_length(self) -> int:
        return self.config.hop_size

    @property
    def num_mels(self) -> int:
        return self.config.num_mels

    @property
    def device(self) -> torch.device:
        return self.generator.conv_pre.bias.device

    def to(self, device: str | torch.device) -> HiFiGANVocoder:
        self.generator.to(device)
        return self

    def __call__(self, mel: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
        """(B, num_mels, T) -> (B, T * hop_length) float32 on the vocoder's device; batch_size splits B."""
        if mel.dim() != 3 or mel.shape[1] != self.num_mels:
            raise ValueError(f"mel must be (batch, {self.num_mels}, frames), found {tuple(mel.shape)}")
        mel = mel.to(self.device, torch.float32)
        step = batch_size or self.batch_size or max(1, mel.shape[0])
        with torch.no_grad():
            return torch.cat([self.generator(chunk)[:, 0] for chunk in mel.split(step)])


def benchmark_vocoder(
    vocoder: HiFiGANVocoder,
    batch_sizes: tuple[int, ...] = (1, 16, 64),
    frames: int = 344,
    device: str | torch.device | None = None,
    repeats: int = 3,
    warmup: int = 1,
) -> list[dict[str, Any]]:
    """Clips per second at each batch size (random mels, after `warmup` untimed calls)."""
    vocoder.to(device if device is not None else vocoder.device)
    rows = []
    for batch in batch_sizes:
        mel = torch.randn(batch, vocoder.num_mels, frames, generator=torch.Generator().manual_seed(0)) - 5.0
        for _ in range(warmup):
            vocoder(mel)
        synchronize(vocoder.device)
        start = time.perf_counter()
        for _ in range(repeats):
            vocoder(mel)
        synchronize(vocoder.device)
        seconds = (time.perf_counter() - start) / repeats
        audio_seconds = batch * frames * vocoder.hop_length / vocoder.sample_rate
        rows.append({
            "device": str(vocoder.device), "batch_size": batch, "frames": frames,
            "seconds_per_batch": seconds, "clips_per_second": batch / seconds,
            "realtime_factor": audio_seconds / seconds,
        })
    return rows



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
