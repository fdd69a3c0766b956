"""A tiny HiFi-GAN that takes the pipeline's mel (80 bins, hop 256 at 22,050 Hz), for fast tests."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from foley.models.hifigan import Generator, HiFiGANConfig
from foley.vocoders.hifigan import DCASE_HIFIGAN

# The DCASE config's mel and optimiser settings with a generator of ~20 k parameters.
TOY_HIFIGAN = {
    **DCASE_HIFIGAN, "upsample_rates": [8, 8, 4], "upsample_kernel_sizes": [16, 16, 8], "upsample_initial_channel": 32,
    "resblock_kernel_sizes": [3], "resblock_dilation_sizes": [[1, 3, 5]], "segment_size": 1024, "learning_rate": 1e-3,
}


def write_toy_hifigan(folder: Path, seed: int = 0, **changes) -> tuple[Path, Path]:
    """An official-layout generator file {'generator': state_dict} of random weights and its config JSON."""
    folder.mkdir(parents=True, exist_ok=True)
    data = {**TOY_HIFIGAN, **changes}
    config_path = folder / "config.json"
    config_path.write_text(json.dumps(data))
    torch.manual_seed(seed)
    checkpoint = folder / "g_00000000"
    torch.save({"generator": Generator(HiFiGANConfig.from_dict(data)).state_dict()}, checkpoint)
    return checkpoint, config_path


def train_overrides(base: Path, epochs: int = 2) -> list[str]:
    """`--set` values that make train_vocoder train the toy HiFi-GAN (6 steps per epoch on the TOY set)."""
    return [
        "vocoder.type=hifigan", f"vocoder.hifigan.train.base={base}", f"vocoder.hifigan.train.epochs={epochs}",
        "vocoder.hifigan.train.batch_size=4", "vocoder.hifigan.train.channel_divisor=8",
        "vocoder.hifigan.train.val_clips=3", "vocoder.hifigan.train.checkpoint_every=2",
        "vocoder.hifigan.train.keep_checkpoints=1",
    ]
