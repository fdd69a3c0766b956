"""The configuration schema: one frozen dataclass per component, each checking its own values.

Checks raise ConfigError naming the key and what would be valid; `Config.check` adds the checks
that span sections (e.g. whether the prior map's attention can fit in memory).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from foley import shapes
from foley.errors import ConfigError
from foley.vggish_weights import missing_weights_message


@dataclass(frozen=True)
class SyntheticConfig:
    train_per_class: int
    reference_per_class: int
    seed: int

    def check(self, path: str) -> None:
        _require(self.train_per_class >= 2, f"{path}.train_per_class", "must be at least 2")
        _require(self.reference_per_class >= 2, f"{path}.reference_per_class", "must be at least 2")


@dataclass(frozen=True)
class DataConfig:
    root: str | None
    reference: str | None
    class_names: tuple[str, ...]
    eval_class_names: tuple[str, ...]
    val_fraction: float
    max_rejected_fraction: float
    synthetic: SyntheticConfig

    def check(self, path: str) -> None:
        _require(len(self.class_names) >= 2, f"{path}.class_names", "needs at least 2 classes")
        _require(
            len(self.eval_class_names) == len(self.class_names),
            f"{path}.eval_class_names",
            f"needs one name per class ({len(self.class_names)}), in the order of class_names",
        )
        for key in ("class_names", "eval_class_names"):
            names = getattr(self, key)
            _require(len(set(names)) == len(names), f"{path}.{key}", "has a duplicate name")
        _require(0.0 <= self.val_fraction < 0.5, f"{path}.val_fraction", "must be in [0, 0.5)")
        _require(
            0.0 <= self.max_rejected_fraction <= 1.0,
            f"{path}.max_rejected_fraction",
            "must be in [0, 1]",
        )


@dataclass(frozen=True)
class AudioConfig:
    sample_rate: int
    clip_samples: int

    def check(self, path: str) -> None:
        _require(self.sample_rate >= 8000, f"{path}.sample_rate", "must be at least 8000 Hz")
        _require(self.clip_samples > 0, f"{path}.clip_samples", "must be positive")


@dataclass(frozen=True)
class MelConfig:
    n_fft: int
    hop_length: int
    win_length: int
    n_mels: int
    fmin: float
    fmax: float

    def check(self, path: str) -> None:
        _require(self.hop_length > 0, f"{path}.hop_length", "must be positive")
        _require(
            self.hop_length < self.n_fft and (self.n_fft - self.hop_length) % 2 == 0,
            f"{path}.hop_length",
            "must be below n_fft with n_fft - hop_length even (HiFi-GAN pads half of it each side)",
        )
        _require(0 < self.win_length <= self.n_fft, f"{path}.win_length", "must be in (0, n_fft]")
        _require(self.n_mels > 0, f"{path}.n_mels", "must be positive")
        _require(0 <= self.fmin < self.fmax, f"{path}.fmin", "must be in [0, fmax)")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int
    batch_size: int
    lr: float
    checkpoint_every: int
    num_workers: int

    def check(self, path: str) -> None:
        _require(self.epochs >= 1, f"{path}.epochs", "must be at least 1")
        _require(self.batch_size >= 1, f"{path}.batch_size", "must be at least 1")
        _require(self.lr > 0, f"{path}.lr", "must be positive")
        _require(
            self.checkpoint_every >= 0,
            f"{path}.checkpoint_every",
            "must be >= 0 (steps between checkpoints; 0 = at the end of each epoch only)",
        )
        _require(self.num_workers >= 0, f"{path}.num_workers", "must be >= 0")


QUANTIZERS = ("vq", "rvq")
CODEBOOK_INITS = ("random", "data")


@dataclass(frozen=True)
class QuantizerConfig:
    type: str
    levels: int
    codebook_size: int
    decay: float
    commitment: float
    init: str
    dead_code_threshold: float

    def check(self, path: str) -> None:
        _require(self.type in QUANTIZERS, f"{path}.type", f"must be one of {', '.join(QUANTIZERS)}")
        _require(self.levels >= 1, f"{path}.levels", "must be at least 1")
        _require(
            self.type == "rvq" or self.levels == 1,
            f"{path}.levels",
            "must be 1 for type vq (use type: rvq for several levels)",
        )
        _require(self.codebook_size >= 2, f"{path}.codebook_size", "must be at least 2")
        _require(0.0 < self.decay < 1.0, f"{path}.decay", "must be in (0, 1)")
        _require(self.commitment >= 0, f"{path}.commitment", "must be >= 0")
        _require(self.init in CODEBOOK_INITS, f"{path}.init", f"must be one of {', '.join(CODEBOOK_INITS)}")
        _require(self.dead_code_threshold >= 0, f"{path}.dead_code_threshold", "must be >= 0 (0 = off)")


@dataclass(frozen=True)
class AutoencoderConfig:
    channel: int
    n_res_block: int
    n_res_channel: int
    embed_dim: int
    strides: tuple[tuple[int, int], ...]
    quantizer: QuantizerConfig
    train: TrainConfig

    def check(self, path: str) -> None:
        _require(len(self.strides) >= 1, f"{path}.strides", "needs at least one strided layer")
        for stride in self.strides:
            for s in stride:
                _require(
                    s >= 1 and s & (s - 1) == 0,
                    f"{path}.strides",
                    f"has {s} in {list(stride)}; each (freq, time) stride must be a power of two",
                )
        _require(
            self.channel >= 2 ** len(self.strides),
            f"{path}.channel",
            f"must be at least {2 ** len(self.strides)} (it halves at each strided layer)",
        )
        for key in ("n_res_channel", "embed_dim"):
            _require(getattr(self, key) >= 1, f"{path}.{key}", "must be positive")
        _require(self.n_res_block >= 0, f"{path}.n_res_block", "must be >= 0")


STACKS = ("freq", "interleave")


@dataclass(frozen=True)
class CodesConfig:
    stack: str
    batch_size: int

    def check(self, path: str) -> None:
        _require(self.stack in STACKS, f"{path}.stack", f"must be one of {', '.join(STACKS)}")
        _require(self.batch_size >= 1, f"{path}.batch_size", "must be at least 1")


@dataclass(frozen=True)
class PriorConfig:
    channel: int
    kernel_size: int
    n_block: int
    n_res_block: int
    res_channel: int
    attention: bool
    n_head: int
    dropout: float
    label_hidden: int
    train: TrainConfig

    def check(self, path: str) -> None:
        for key in ("channel", "kernel_size", "n_block", "res_channel", "label_hidden"):
            _require(getattr(self, key) >= 1, f"{path}.{key}", "must be positive")
        _require(self.kernel_size >= 2, f"{path}.kernel_size", "must be at least 2")
        _require(self.n_res_block >= 0, f"{path}.n_res_block", "must be >= 0")
        _require(0.0 <= self.dropout < 1.0, f"{path}.dropout", "must be in [0, 1)")
        if self.attention:
            _require(self.n_head >= 1, f"{path}.n_head", "must be positive")
            _require(
                self.channel % 2 == 0 and (self.channel // 2) % self.n_head == 0,
                f"{path}.n_head",
                f"must divide channel / 2 = {self.channel // 2} (attention width)",
            )


@dataclass(frozen=True)
class SampleConfig:
    per_class: int
    temperature: float
    top_k: int
    batch_size: int

    def check(self, path: str) -> None:
        _require(self.per_class >= 1, f"{path}.per_class", "must be at least 1")
        _require(self.temperature > 0, f"{path}.temperature", "must be positive")
        _require(self.top_k >= 0, f"{path}.top_k", "must be >= 0 (0 = no top-k truncation)")
        _require(self.batch_size >= 1, f"{path}.batch_size", "must be at least 1")


@dataclass(frozen=True)
class GriffinLimConfig:
    n_iter: int
    momentum: float

    def check(self, path: str) -> None:
        _require(self.n_iter >= 1, f"{path}.n_iter", "must be at least 1")
        _require(0.0 <= self.momentum < 1.0, f"{path}.momentum", "must be in [0, 1)")


VOCODERS = ("griffinlim", "hifigan")
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
            _require(getattr(self, key) >= 1, f"{path}.{key}", "must be at least 1")
        _require(self.checkpoint_every >= 0, f"{path}.checkpoint_every",
                 "must be >= 0 (steps between checkpoints; 0 = at the end of each epoch only)")
        _require(self.keep_checkpoints >= 0, f"{path}.keep_checkpoints", "must be >= 0 (0 keeps every checkpoint)")
        _require(self.channel_divisor in CHANNEL_DIVISORS, f"{path}.channel_divisor",
                 f"must be one of {', '.join(map(str, CHANNEL_DIVISORS))} (1 = the official discriminators)")
        _require(self.num_workers >= 0, f"{path}.num_workers", "must be >= 0")


@dataclass(frozen=True)
class HiFiGANVocoderConfig:
    """An official checkpoint to load (checkpoint + config), or, with both null, one to train."""

    checkpoint: str | None
    config: str | None
    train: HiFiGANTrainConfig

    def check(self, path: str) -> None:
        if (self.checkpoint is None) != (self.config is None):
            missing, given = ("config", "checkpoint") if self.config is None else ("checkpoint", "config")
            _require(False, f"{path}.{missing}", f"is null but {path}.{given} is set; give both (the official "
                     "g_XXXXXXXX generator file and the config JSON saved with it), or neither to train one")

    def check_files(self, path: str) -> None:
        """The files it names exist (checked only when the HiFi-GAN is the configured vocoder)."""
        expected = {
            "checkpoint": f"an official HiFi-GAN generator file g_XXXXXXXX ({DCASE_HIFIGAN_HINT})",
            "config": f"the official HiFi-GAN config JSON saved with the checkpoint ({DCASE_HIFIGAN_HINT})",
        }
        for key, what in expected.items():
            name = getattr(self, key)
            _require(name is None or Path(name).is_file(), f"{path}.{key}",
                     f"names {name!r}, which does not exist; expected {what}")
        base = self.train.base
        _require(base is None or Path(base).is_file(), f"{path}.train.base",
                 f"names {base!r}, which does not exist; expected an official HiFi-GAN config JSON to train with "
                 "(or null for the DCASE baseline's)")


@dataclass(frozen=True)
class VocoderConfig:
    type: str
    batch_size: int
    griffinlim: GriffinLimConfig
    hifigan: HiFiGANVocoderConfig

    def check(self, path: str) -> None:
        _require(self.type in VOCODERS, f"{path}.type", f"must be one of {', '.join(VOCODERS)}")
        _require(self.batch_size >= 1, f"{path}.batch_size", "must be at least 1")
        if self.type == "hifigan":
            self.hifigan.check_files(f"{path}.hifigan")


EMBEDDERS = ("builtin", "vggish")
FAD_PROTOCOLS = ("dcase2023", "standard")


@dataclass(frozen=True)
class EvaluateConfig:
    embedder: str
    vggish_weights: str | None
    protocol: str
    relax_checks: bool
    reference: str | None
    fad_inf: bool
    bootstrap: int
    floors: bool
    floor_clips_per_class: int
    batch_size: int

    def check(self, path: str) -> None:
        _require(self.embedder in EMBEDDERS, f"{path}.embedder", f"must be one of {', '.join(EMBEDDERS)}")
        if self.embedder == "vggish" and self.vggish_weights is None:
            raise ConfigError(f"config key '{path}.vggish_weights' is null: {missing_weights_message(None)}")
        _require(self.protocol in FAD_PROTOCOLS, f"{path}.protocol", f"must be one of {', '.join(FAD_PROTOCOLS)}")
        _require(self.bootstrap == 0 or self.bootstrap >= 2, f"{path}.bootstrap", "must be 0 (off) or at least 2 resamples")
        _require(
            self.floor_clips_per_class >= 0,
            f"{path}.floor_clips_per_class",
            "must be >= 0 (0 = every reference clip)",
        )
        _require(self.batch_size >= 1, f"{path}.batch_size", "must be at least 1")


# Attention holds a (positions x positions) score matrix per head and clip; refuse maps whose
# matrices for one training batch could not fit in any accelerator's memory.
MAX_ATTENTION_BYTES = 64 * 2**30


@dataclass(frozen=True)
class Config:
    name: str
    seed: int
    device: str
    amp: bool
    data: DataConfig
    audio: AudioConfig
    mel: MelConfig
    autoencoder: AutoencoderConfig
    codes: CodesConfig
    prior: PriorConfig
    sample: SampleConfig
    vocoder: VocoderConfig
    evaluate: EvaluateConfig

    def check(self, path: str) -> None:
        _require(
            self.mel.fmax <= self.audio.sample_rate / 2,
            "mel.fmax",
            f"must not exceed the Nyquist frequency {self.audio.sample_rate / 2:g} Hz",
        )
        _require(
            self.device == "auto" or self.device == "cpu" or self.device.startswith("cuda"),
            "device",
            "must be auto, cpu, cuda or cuda:N",
        )
        frames = shapes.mel_frames(self.audio.clip_samples, self.mel.n_fft, self.mel.hop_length)
        _require(frames >= 1, "audio.clip_samples", f"must be at least mel.n_fft - mel.hop_length")
        height, width = self.map_shape
        if self.prior.attention:
            positions = height * width
            need = 4 * positions**2 * self.prior.n_head * self.prior.train.batch_size
            _require(
                need <= MAX_ATTENTION_BYTES,
                "autoencoder.strides",
                f"give a {height} x {width} prior map whose attention needs {need / 2**30:.0f} GiB "
                "per training batch; use larger strides, fewer levels or prior.attention: false",
            )

    @property
    def latent_shape(self) -> tuple[int, int]:
        """(height, width) of one quantiser level for the configured mel."""
        frames = shapes.mel_frames(self.audio.clip_samples, self.mel.n_fft, self.mel.hop_length)
        return shapes.latent_shape((self.mel.n_mels, frames), self.autoencoder.strides)

    @property
    def map_shape(self) -> tuple[int, int]:
        """(height, width) of the stacked code map the prior models."""
        return shapes.stacked_shape(self.latent_shape, self.autoencoder.quantizer.levels)

    @property
    def class_count(self) -> int:
        return len(self.data.class_names)

    def section_hash(self, *sections: str) -> str:
        """Content hash of the named sections (a stage's parameters); dotted names name sub-sections."""
        payload = {name: to_plain(self.section(name)) for name in sections}
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def section(self, dotted: str) -> Any:
        """A section or sub-section by its dotted key, e.g. "vocoder.hifigan"."""
        node: Any = self
        for part in dotted.split("."):
            node = getattr(node, part)
        return node

    def replace(self, **changes: Any) -> "Config":
        return dataclasses.replace(self, **changes)


def _require(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"config key '{key}' {message}")


def to_plain(obj: Any) -> Any:
    """A config (or section) as plain dicts and lists, ready for YAML or JSON."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj
