"""Training a HiFi-GAN on a run's clips with the shared loop (`foley.train.loop.fit`).

`training_config` resolves the official config to train (a base JSON, or the DCASE baseline's)
and makes sure it takes the run's mel. `ClipDataset` reads clips as the official loader does: the
foley clip policy, then each clip peak-normalised to 0.95. `HiFiGANTask` is the loop's task: per
batch one discriminator and one generator update on random segments, the official learning-rate
decay per epoch, validation mel L1 every `validate_every` epochs, and checkpoints that ARE the
official g_/do_ pairs: the loop's own state rides in the do_ file under LOOP_KEY, which the
official code ignores, and a pair written by the official code resumes too (from its epoch start).
With several processes the three networks train inside DistributedDataParallel (as the official
train.py does), each rank takes its slice of every batch and validation is split over the ranks.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset

from foley.audio.clips import read_clip
from foley.config import Config
from foley.models.hifigan import HiFiGANConfig
from foley.train.batches import BatchShare, share_of
from foley.train.loop import LoopState
from foley.util import distributed
from foley.util.errors import AudioError
from foley.vocoders.hifigan import DCASE_HIFIGAN, MEL_KEYS, check_mel_settings
from foley.vocoders.hifigan_training import (
    HiFiGANModels,
    build_optimizers,
    load_training_checkpoint,
    make_batch,
    peak_normalize,
    prune_checkpoints,
    random_segments,
    save_training_checkpoint,
    train_step,
    validation_mel_l1,
)

LOOP_KEY = "foley_loop"


def training_config(config: Config) -> HiFiGANConfig:
    """The official config to train: vocoder.hifigan.train.base (its mel must be the run's), or the
    DCASE baseline's with the run's mel; batch_size is the train block's."""
    train = config.vocoder.hifigan.train
    if train.base is None:
        run_mel = {key: config.section(run_key) for key, run_key in MEL_KEYS.items()}
        hifigan = HiFiGANConfig.from_dict({**DCASE_HIFIGAN, **run_mel}, source="the DCASE HiFi-GAN config with the run's mel")
    else:
        hifigan = HiFiGANConfig.from_json(train.base)
        check_mel_settings(hifigan, config, f"HiFi-GAN config '{train.base}' (vocoder.hifigan.train.base)")
    return dataclasses.replace(hifigan, batch_size=train.batch_size)


class ClipDataset(Dataset):
    """Clips made to the clip policy and peak-normalised, as (num_samples,) float32 tensors.

    offsets: each clip's first sample in its converted recording (prepare's index.csv; None: all 0).
    """

    def __init__(self, paths: Sequence[str | Path], sample_rate: int, num_samples: int,
                 offsets: Sequence[int] | None = None) -> None:
        self.paths, self.sample_rate, self.num_samples = list(paths), sample_rate, num_samples
        self.offsets = list(offsets) if offsets is not None else [0] * len(self.paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        path = self.paths[index]
        try:
            clip = read_clip(path, self.sample_rate, self.num_samples, self.offsets[index])
        except AudioError as err:
            raise AudioError(f"'{path}': {err}") from None
        return peak_normalize(torch.from_numpy(clip.audio))

    def all(self) -> torch.Tensor:
        """Every clip, stacked (N, num_samples)."""
        return torch.stack([self[i] for i in range(len(self))])


class HiFiGANTask:
    """The shared loop's task for HiFi-GAN; keeps its checkpoints as official g_/do_ pairs."""

    def __init__(self, models: HiFiGANModels, device: torch.device, seed: int, val_clips: torch.Tensor,
                 epochs: int, validate_every: int, keep_checkpoints: int) -> None:
        self.models, self.device, self.seed = models.to(device), device, seed
        self.networks = HiFiGANModels(*(distributed.wrap(m, device) for m in (models.generator, models.mpd, models.msd)))
        self.optimizers = build_optimizers(models)
        self.val_clips, self.epochs, self.validate_every = val_clips, epochs, validate_every
        self.keep_checkpoints = keep_checkpoints
        self.steps = 0  # completed steps; segment positions of step s come from (seed, s)

    @property
    def config(self) -> HiFiGANConfig:
        return self.models.config

    def train_step(self, clips: torch.Tensor, share: BatchShare) -> dict[str, float]:
        rng = torch.Generator().manual_seed(self.seed * 1_000_003 + self.steps)
        segments = random_segments(clips, self.config.segment_size, rng, share.first, share.total).to(self.device)
        losses = train_step(self.networks, self.optimizers, make_batch(segments, self.config), share.gradient_scale)
        self.steps += 1
        return losses

    def end_epoch(self, epoch: int) -> dict[str, float]:
        """Learning rate used in the epoch, then decay; val/mel_l1 when due (NaN otherwise)."""
        metrics = {"lr": float(self.optimizers.optim_g.param_groups[0]["lr"])}
        self.optimizers.end_epoch()
        due = (epoch + 1) % self.validate_every == 0 or epoch + 1 == self.epochs
        metrics["val/mel_l1"] = self.validate() if due else math.nan
        return metrics

    def validate(self) -> float:
        """Validation mel L1 over the validation clips, each rank scoring its slice of them."""
        share = share_of(len(self.val_clips), distributed.rank(), distributed.world_size())
        clips = self.val_clips[share.first : share.first + share.count]
        mine = validation_mel_l1(self.models.generator, clips) if share.count else 0.0
        return distributed.summed_floats([mine * share.weight])[0]

    def save_checkpoint(self, folder: Path, loop: LoopState) -> None:
        """g_/do_ named by the official `steps` (the last completed step's index), then pruning."""
        extra = {LOOP_KEY: {"batch_in_epoch": loop.batch_in_epoch, "rng": loop.rng, "summary": loop.summary}}
        save_training_checkpoint(folder, loop.step - 1, loop.epoch, self.models, self.optimizers, extra)
        prune_checkpoints(folder, self.keep_checkpoints)

    def load_checkpoint(self, folder: Path) -> LoopState | None:
        progress = load_training_checkpoint(folder, self.models, self.optimizers)
        if progress is None:
            return None
        loop = progress.extra.get(LOOP_KEY, {})
        self.steps = progress.next_step
        return LoopState(progress.epoch, int(loop.get("batch_in_epoch", 0)), progress.next_step, loop.get("rng"),
                         loop.get("summary", {}))
