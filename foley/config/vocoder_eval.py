"""The configuration sections after the prior: the vocoder (Griffin-Lim or HiFi-GAN) and the evaluation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from foley.config.sections import require, require_choice
from foley.registry import EMBEDDERS, PROTOCOLS, VOCODERS
from foley.util.errors import ConfigError


@dataclass(frozen=True)
class GriffinLimConfig:
    n_iter: int
    momentum: float

    def check(self, path: str) -> None:
        require(self.n_iter >= 1, f"{path}.n_iter", "must be at least 1")
        require(0.0 <= self.momentum < 1.0, f"{path}.momentum", "must be in [0, 1)")


CHANNEL_DIVISORS = (1, 2, 4, 8)
DCASE_HIFIGAN_HINT = "the DCASE 2023 Task 7 baseline repository's checkpoint/hifigan/ has g_00935000 and hifigan_config.json"


@dataclass(frozen=True)
class HiFiGANTrainConfig:
    """How the train_vocoder stage trains a HiFi-GAN on the run's training clips."""

    base: str | None  # official config JSON to train; None = the DCASE baseline's (V1)
    epochs: int
    batch_size: int
    checkpoint_every: int
    keep_checkpoints: int
    validate_every: int
    val_clips: int
    channel_divisor: int
    num_workers: int

    def check(self, path: str) -> None:
        for key in ("epochs", "batch_size", "validate_every", "val_clips"):
            require(getattr(self, key) >= 1, f"{path}.{key}", "must be at least 1")
        require(self.checkpoint_every >= 0, f"{path}.checkpoint_every",
                 "must be >= 0 (steps between checkpoints; 0 = at the end of each epoch only)")
        require(self.keep_checkpoints >= 0, f"{path}.keep_checkpoints", "must be >= 0 (0 keeps every checkpoint)")
        require(self.channel_divisor in CHANNEL_DIVISORS, f"{path}.channel_divisor",
                 f"must be one of {', '.join(map(str, CHANNEL_DIVISORS))} (1 = the official discriminators)")
        require(self.num_workers >= 0, f"{path}.num_workers", "must be >= 0")


@dataclass(frozen=True)
class HiFiGANVocoderConfig:
    """An official checkpoint to load (checkpoint + config), or, with both null, one to train."""

    checkpoint: str | None
    config: str | None
    train: HiFiGANTrainConfig

    def check(self, path: str) -> None:
        if (self.checkpoint is None) != (self.config is None):
            missing, given = ("config", "checkpoint") if self.config is None else ("checkpoint", "config")
            require(False, f"{path}.{missing}", f"is null but {path}.{given} is set; give both (the official "
                     "g_<step> generator file and the config JSON saved with it), or neither to train one")

    def check_files(self, path: str) -> None:
        """The files it names exist (checked only when the HiFi-GAN is the configured vocoder)."""
        expected = {
            "checkpoint": f"an official HiFi-GAN generator file g_<step> ({DCASE_HIFIGAN_HINT})",
            "config": f"the official HiFi-GAN config JSON saved with the checkpoint ({DCASE_HIFIGAN_HINT})",
        }
        for key, what in expected.items():
            name = getattr(self, key)
            require(name is None or Path(name).is_file(), f"{path}.{key}",
                     f"names {name!r}, which does not exist; expected {what}")
        base = self.train.base
        require(base is None or Path(base).is_file(), f"{path}.train.base",
                 f"names {base!r}, which does not exist; expected an official HiFi-GAN config JSON to train with "
                 "(or null for the DCASE baseline's)")


@dataclass(frozen=True)
class VocoderConfig:
    type: str
    batch_size: int
    griffinlim: GriffinLimConfig
    hifigan: HiFiGANVocoderConfig

    def check(self, path: str) -> None:
        require_choice(self.type, VOCODERS.names(), f"{path}.type")
        require(self.batch_size >= 1, f"{path}.batch_size", "must be at least 1")
        if self.type == "hifigan":
            self.hifigan.check_files(f"{path}.hifigan")


METRICS = ("fad", "kad")  # foley.evaluate.scores computes them
KAD_BANDWIDTH_FROM = ("reference", "generated")  # where foley.evaluate.kad takes its bandwidth from


@dataclass(frozen=True)
class EvaluateConfig:
    embedder: str
    embedders: tuple[str, ...]  # when not empty: every embedder of the evaluation, in order (replaces embedder)
    weights: dict[str, str | None]  # embedder name -> its pretrained weights file (EMBEDDERS entries with weights)
    protocol: str
    metrics: tuple[str, ...]
    kad_bandwidth: str
    relax_checks: bool
    reference: str | None
    fad_inf: bool
    bootstrap: int
    floors: bool
    floor_clips_per_class: int
    batch_size: int
    save_embeddings: bool
    classifier_epochs: int
    classifier_min_steps: int

    @property
    def embedder_names(self) -> tuple[str, ...]:
        """The embedders of the evaluation: `embedders` when given, else `embedder` alone."""
        return self.embedders or (self.embedder,)

    def check(self, path: str) -> None:
        key = f"{path}.embedders" if self.embedders else f"{path}.embedder"
        for name in self.embedder_names:
            require_choice(name, EMBEDDERS.names(), key)
        require(len(set(self.embedder_names)) == len(self.embedder_names), key, "lists an embedder twice")
        for name in self.weights:
            needs = name in EMBEDDERS.names() and EMBEDDERS.entry(name).weights is not None
            require(needs, f"{path}.weights.{name}", f"names no embedder that takes weights; embedders with weights: "
                    f"{', '.join(n for n in EMBEDDERS.names() if EMBEDDERS.entry(n).weights)}")
        for name in self.embedder_names:
            weights = EMBEDDERS.entry(name).weights
            if weights is not None and self.weights.get(name) is None:
                raise ConfigError(f"config key '{path}.weights.{name}' is null: {weights.missing(name, None)}")
        require_choice(self.protocol, PROTOCOLS.names(), f"{path}.protocol")
        require(len(self.metrics) >= 1, f"{path}.metrics", f"needs at least one of {', '.join(METRICS)}")
        for metric in self.metrics:
            require_choice(metric, METRICS, f"{path}.metrics")
        require_choice(self.kad_bandwidth, KAD_BANDWIDTH_FROM, f"{path}.kad_bandwidth")
        require(self.bootstrap == 0 or self.bootstrap >= 2, f"{path}.bootstrap", "must be 0 (off) or at least 2 resamples")
        require(
            self.floor_clips_per_class >= 0,
            f"{path}.floor_clips_per_class",
            "must be >= 0 (0 = every reference clip)",
        )
        require(self.batch_size >= 1, f"{path}.batch_size", "must be at least 1")
        require(self.classifier_epochs >= 0, f"{path}.classifier_epochs", "must be >= 0 (0 = no class accuracy)")
        require(self.classifier_min_steps >= 0, f"{path}.classifier_min_steps", "must be >= 0")
