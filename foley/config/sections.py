"""The configuration sections of the model pipeline: data, audio, mel, training, autoencoder, codes, prior, sampling.

Each is a frozen dataclass whose check(path) raises ConfigError naming the key and what would be
valid; `require` and `to_plain` are shared by every section module. A field declared with a
default is a key added later whose default is the behaviour of before: every config still lists
it (base.yaml), and at its default it leaves its section's hash (Config.section_hash) unchanged.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from foley.registry import QUANTIZERS
from foley.util.errors import ConfigError


def require(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"config key '{key}' {message}")


def require_choice(value: object, choices: tuple, key: str) -> None:
    """`value` must be one of `choices`; the error lists them."""
    require(value in choices, key, f"must be one of {', '.join(map(str, choices))}")


@dataclass(frozen=True)
class SyntheticConfig:
    train_per_class: int
    reference_per_class: int
    seed: int

    def check(self, path: str) -> None:
        require(self.train_per_class >= 2, f"{path}.train_per_class", "must be at least 2")
        require(self.reference_per_class >= 2, f"{path}.reference_per_class", "must be at least 2")


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
        require(len(self.class_names) >= 2, f"{path}.class_names", "needs at least 2 classes")
        require(
            len(self.eval_class_names) == len(self.class_names),
            f"{path}.eval_class_names",
            f"needs one name per class ({len(self.class_names)}), in the order of class_names",
        )
        for key in ("class_names", "eval_class_names"):
            names = getattr(self, key)
            require(len(set(names)) == len(names), f"{path}.{key}", "has a duplicate name")
        require(0.0 <= self.val_fraction < 0.5, f"{path}.val_fraction", "must be in [0, 0.5)")
        require(
            0.0 <= self.max_rejected_fraction <= 1.0,
            f"{path}.max_rejected_fraction",
            "must be in [0, 1]",
        )


@dataclass(frozen=True)
class AudioConfig:
    sample_rate: int
    clip_samples: int

    def check(self, path: str) -> None:
        require(self.sample_rate >= 8000, f"{path}.sample_rate", "must be at least 8000 Hz")
        require(self.clip_samples > 0, f"{path}.clip_samples", "must be positive")


@dataclass(frozen=True)
class MelConfig:
    n_fft: int
    hop_length: int
    win_length: int
    n_mels: int
    fmin: float
    fmax: float

    def check(self, path: str) -> None:
        require(self.hop_length > 0, f"{path}.hop_length", "must be positive")
        require(
            self.hop_length < self.n_fft and (self.n_fft - self.hop_length) % 2 == 0,
            f"{path}.hop_length",
            "must be below n_fft with n_fft - hop_length even (HiFi-GAN pads half of it each side)",
        )
        require(0 < self.win_length <= self.n_fft, f"{path}.win_length", "must be in (0, n_fft]")
        require(self.n_mels > 0, f"{path}.n_mels", "must be positive")
        require(0 <= self.fmin < self.fmax, f"{path}.fmin", "must be in [0, fmax)")


LR_SCHEDULES = ("constant", "cosine")  # foley.train.schedule.SCHEDULES


@dataclass(frozen=True)
class TrainConfig:
    epochs: int
    batch_size: int
    lr: float
    checkpoint_every: int
    num_workers: int
    schedule: str = "constant"
    warmup_steps: int = 0

    def check(self, path: str) -> None:
        require_choice(self.schedule, LR_SCHEDULES, f"{path}.schedule")
        require(self.warmup_steps >= 0, f"{path}.warmup_steps", "must be >= 0 (0 = no warm-up)")
        require(self.epochs >= 1, f"{path}.epochs", "must be at least 1")
        require(self.batch_size >= 1, f"{path}.batch_size", "must be at least 1")
        require(self.lr > 0, f"{path}.lr", "must be positive")
        require(
            self.checkpoint_every >= 0,
            f"{path}.checkpoint_every",
            "must be >= 0 (steps between checkpoints; 0 = at the end of each epoch only)",
        )
        require(self.num_workers >= 0, f"{path}.num_workers", "must be >= 0")


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
        require_choice(self.type, QUANTIZERS.names(), f"{path}.type")
        require(self.levels >= 1, f"{path}.levels", "must be at least 1")
        require(
            self.type == "rvq" or self.levels == 1,
            f"{path}.levels",
            "must be 1 for type vq (use type: rvq for several levels)",
        )
        require(self.codebook_size >= 2, f"{path}.codebook_size", "must be at least 2")
        require(0.0 < self.decay < 1.0, f"{path}.decay", "must be in (0, 1)")
        require(self.commitment >= 0, f"{path}.commitment", "must be >= 0")
        require_choice(self.init, CODEBOOK_INITS, f"{path}.init")
        require(self.dead_code_threshold >= 0, f"{path}.dead_code_threshold", "must be >= 0 (0 = off)")


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
        require(len(self.strides) >= 1, f"{path}.strides", "needs at least one strided layer")
        for stride in self.strides:
            for s in stride:
                require(
                    s >= 1 and s & (s - 1) == 0,
                    f"{path}.strides",
                    f"has {s} in {list(stride)}; each (freq, time) stride must be a power of two",
                )
        require(
            self.channel >= 2 ** len(self.strides),
            f"{path}.channel",
            f"must be at least {2 ** len(self.strides)} (it halves at each strided layer)",
        )
        for key in ("n_res_channel", "embed_dim"):
            require(getattr(self, key) >= 1, f"{path}.{key}", "must be positive")
        require(self.n_res_block >= 0, f"{path}.n_res_block", "must be >= 0")


STACKS = ("freq", "interleave", "time")


@dataclass(frozen=True)
class CodesConfig:
    stack: str
    batch_size: int

    def check(self, path: str) -> None:
        require_choice(self.stack, STACKS, f"{path}.stack")
        require(self.batch_size >= 1, f"{path}.batch_size", "must be at least 1")


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
    label_dropout: float = 0.0
    label_channels: int = 1

    def check(self, path: str) -> None:
        for key in ("channel", "kernel_size", "n_block", "res_channel", "label_hidden", "label_channels"):
            require(getattr(self, key) >= 1, f"{path}.{key}", "must be positive")
        require(self.kernel_size >= 2, f"{path}.kernel_size", "must be at least 2")
        require(self.n_res_block >= 0, f"{path}.n_res_block", "must be >= 0")
        require(0.0 <= self.dropout < 1.0, f"{path}.dropout", "must be in [0, 1)")
        require(
            0.0 <= self.label_dropout < 1.0,
            f"{path}.label_dropout",
            "must be in [0, 1) (0 = no null label; classifier-free guidance needs > 0, e.g. 0.1)",
        )
        if self.attention:
            require(self.n_head >= 1, f"{path}.n_head", "must be positive")
            require(
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
    guidance: float = 1.0

    def check(self, path: str) -> None:
        require(self.per_class >= 1, f"{path}.per_class", "must be at least 1")
        require(self.temperature > 0, f"{path}.temperature", "must be positive")
        require(self.guidance >= 0, f"{path}.guidance", "must be >= 0 (1 = no classifier-free guidance, 0 = unconditional)")
        require(self.top_k >= 0, f"{path}.top_k", "must be >= 0 (0 = no top-k truncation)")
        require(self.batch_size >= 1, f"{path}.batch_size", "must be at least 1")


def to_plain(obj: Any) -> Any:
    """A config (or section) as plain dicts and lists, ready for YAML or JSON."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj
