"""The configuration sections of the model pipeline: data, audio, mel, training, autoencoder, codes, prior, sampling.

Each is a frozen dataclass whose check(path) raises ConfigError naming the key and what would be
valid; `require` and `to_plain` are shared by every section module.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from foley.registry import QUANTIZERS
from foley.util.errors import ConfigError

LONG_FILES = ("crop", "split")  # how prepare treats files longer than a clip (foley.audio.clips)


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
    long_files: str
    split_hop: int | None
    silence_db: float
    clipped_fraction: float
    num_workers: int
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
        require_choice(self.long_files, LONG_FILES, f"{path}.long_files")
        require(self.split_hop is None or self.split_hop >= 1, f"{path}.split_hop",
                "must be null (one clip length) or >= 1 sample")
        require(self.silence_db <= 0, f"{path}.silence_db", "must be <= 0 (a peak level in dBFS)")
        require(0.0 <= self.clipped_fraction <= 1.0, f"{path}.clipped_fraction", "must be in [0, 1]")
        require(self.num_workers >= 0, f"{path}.num_workers", "must be >= 0 (0 decodes in the main process)")


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
    schedule: str
    warmup_steps: int
    steps: int = 0  # > 0: the fewest whole epochs that make this many optimizer steps, at most `epochs`

    def check(self, path: str) -> None:
        require_choice(self.schedule, LR_SCHEDULES, f"{path}.schedule")
        require(self.steps >= 0, f"{path}.steps", "must be >= 0 (0 = train `epochs` epochs)")
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


@dataclass(frozen=True)
class TrainSpeedConfig:
    """How the trainers compute, not what: the results equal the reference computation's up to
    float rounding (TF32's on a GPU). The trainer stages declare it, so changing it re-runs them."""

    fast_path: bool
    compile: bool
    tf32: bool

    def check(self, path: str) -> None:
        """Every combination is valid (each switch only changes how a step is computed)."""


CODEBOOK_INITS = ("random", "data", "kmeans")


@dataclass(frozen=True)
class QuantizerConfig:
    type: str
    levels: int
    codebook_size: int
    decay: float
    commitment: float
    init: str
    dead_code_threshold: float
    dropout: float

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
        require(0.0 <= self.dropout <= 1.0, f"{path}.dropout", "must be in [0, 1] (0 = off)")
        require(
            self.dropout == 0 or self.levels > 1,
            f"{path}.dropout",
            "needs several levels (type: rvq, levels > 1): it trains with a random number of them",
        )


@dataclass(frozen=True)
class LossConfig:
    mel_bands: int
    band_weights: tuple[float, ...]
    balancer: bool
    balancer_total_norm: float
    balancer_decay: float

    def check(self, path: str) -> None:
        require(self.mel_bands >= 1, f"{path}.mel_bands", "must be at least 1 (1 = the plain MSE)")
        require(
            not self.band_weights or len(self.band_weights) == self.mel_bands,
            f"{path}.band_weights",
            f"needs one weight per band ({self.mel_bands}), or [] for equal weights",
        )
        require(
            all(w >= 0 for w in self.band_weights) and (not self.band_weights or sum(self.band_weights) > 0),
            f"{path}.band_weights",
            "must be >= 0 with a positive sum",
        )
        require(self.balancer_total_norm > 0, f"{path}.balancer_total_norm", "must be positive")
        require(0.0 <= self.balancer_decay < 1.0, f"{path}.balancer_decay", "must be in [0, 1)")

    @property
    def weights(self) -> tuple[float, ...]:
        """One weight per band (equal when band_weights is empty)."""
        return self.band_weights or (1.0,) * self.mel_bands


@dataclass(frozen=True)
class AutoencoderConfig:
    channel: int
    n_res_block: int
    n_res_channel: int
    embed_dim: int
    strides: tuple[tuple[int, int], ...]
    standardize: bool
    quantizer: QuantizerConfig
    loss: LossConfig
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
    label_dropout: float
    label_channels: int
    train: TrainConfig

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
    levels: int
    guidance: float
    best_of: int
    best_of_by: str

    def check(self, path: str) -> None:
        require(self.per_class >= 1, f"{path}.per_class", "must be at least 1")
        require(self.best_of >= 1, f"{path}.best_of", "must be at least 1 (1 = each clip is its own single draw)")
        require_choice(self.best_of_by, ("loudness", "prior"), f"{path}.best_of_by")
        require(self.levels >= 0, f"{path}.levels", "must be >= 0 (0 = all of the autoencoder's levels)")
        require(self.temperature > 0, f"{path}.temperature", "must be positive")
        require(self.guidance >= 0, f"{path}.guidance", "must be >= 0 (1 = no classifier-free guidance, 0 = unconditional)")
        require(self.top_k >= 0, f"{path}.top_k", "must be >= 0 (0 = no top-k truncation)")
        require(self.batch_size >= 1, f"{path}.batch_size", "must be at least 1")

    @property
    def picks_by(self) -> str | None:
        """The rule that keeps one of a clip's candidates ("loudness" or "prior"); None at best_of 1."""
        return self.best_of_by if self.best_of > 1 else None


def to_plain(obj: Any) -> Any:
    """A config (or section) as plain dicts and lists, ready for YAML or JSON."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj
