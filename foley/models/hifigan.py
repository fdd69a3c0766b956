"""HiFi-GAN generator (resblock types "1" and "2") in the official jik876/hifi-gan layout.

State-dict keys and shapes are exactly the official ones: conv_pre, ups.N, resblocks.N.convs1 /
convs2 (type "1") or convs (type "2"), conv_post, each with the weight-norm pair weight_g /
weight_v. We keep those names with our own small weight-normalised convolution (`WeightNormConv`)
(foley.models.normed_conv) instead of torch.nn.utils.weight_norm, which is deprecated and whose
replacement names them parametrizations.weight.original0/1; files saved with those newer names load
too (renamed on load).
For inference the weight norm is folded into plain `weight` tensors (`Generator.remove_weight_norm`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from foley.config import MelConfig
from foley.models.normed_conv import WeightNormConv
from foley.util.checkpoint import read_torch_file
from foley.util.errors import CheckpointError, ConfigError

LRELU_SLOPE = 0.1
FINAL_LRELU_SLOPE = 0.01  # the official forward calls F.leaky_relu with its default slope before conv_post
INIT_STD = 0.01  # official init of every generator conv weight except conv_pre (torch default there)
RESBLOCK_DILATIONS = {"1": 3, "2": 2}  # resblock type -> number of dilations per kernel
NEW_WEIGHT_NORM_NAMES = {
    "parametrizations.weight.original0": "weight_g",
    "parametrizations.weight.original1": "weight_v",
}


@dataclass(frozen=True)
class HiFiGANConfig:
    """The official config JSON's keys (unknown keys such as num_gpus or dist_config are ignored)."""

    resblock: str
    upsample_rates: tuple[int, ...]
    upsample_kernel_sizes: tuple[int, ...]
    upsample_initial_channel: int
    resblock_kernel_sizes: tuple[int, ...]
    resblock_dilation_sizes: tuple[tuple[int, ...], ...]
    num_mels: int
    sampling_rate: int
    n_fft: int
    hop_size: int
    win_size: int
    fmin: float
    fmax: float
    fmax_for_loss: float | None
    segment_size: int
    batch_size: int
    learning_rate: float
    adam_b1: float
    adam_b2: float
    lr_decay: float
    seed: int

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "HiFi-GAN config") -> HiFiGANConfig:
        missing = [f.name for f in fields(cls) if f.name not in data]
        if missing:
            raise ConfigError(f"{source} lacks key(s) {', '.join(missing)} (the official config JSON has them all)")
        values = {f.name: data[f.name] for f in fields(cls)}
        try:
            for key in ("upsample_rates", "upsample_kernel_sizes", "resblock_kernel_sizes"):
                values[key] = tuple(values[key])
            values["resblock_dilation_sizes"] = tuple(tuple(d) for d in values["resblock_dilation_sizes"])
            return cls(**values)
        except ConfigError as err:
            raise ConfigError(f"{source}: {err}") from None
        except TypeError as err:
            raise ConfigError(f"{source}: a value has the wrong type ({err}); compare with the official JSON") from None

    @classmethod
    def from_json(cls, path: str | Path) -> HiFiGANConfig:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"HiFi-GAN config '{path}' does not exist (use the JSON saved beside the checkpoint)")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ConfigError(f"HiFi-GAN config '{path}' is not valid JSON ({err})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"HiFi-GAN config '{path}' must hold a JSON object, found {type(data).__name__}")
        return cls.from_dict(data, source=f"HiFi-GAN config '{path}'")

    def to_dict(self) -> dict[str, Any]:
        """The official key names and JSON types (tuples as lists)."""
        return json.loads(json.dumps(asdict(self)))

    def __post_init__(self) -> None:
        def require(ok: bool, key: str, message: str) -> None:
            if not ok:
                raise ConfigError(f"key '{key}' {message}")

        require(self.resblock in RESBLOCK_DILATIONS, "resblock",
                f'must be "1" or "2" (a string), found {self.resblock!r}')
        require(len(self.upsample_rates) == len(self.upsample_kernel_sizes) > 0, "upsample_kernel_sizes",
                "needs one kernel per upsample rate")
        for rate, kernel in zip(self.upsample_rates, self.upsample_kernel_sizes):
            require(kernel >= rate > 0 and (kernel - rate) % 2 == 0, "upsample_kernel_sizes",
                    f"kernel {kernel} for rate {rate}: needs kernel >= rate and kernel - rate even")
        require(math.prod(self.upsample_rates) == self.hop_size, "upsample_rates",
                f"multiply to {math.prod(self.upsample_rates)}, must equal hop_size {self.hop_size}")
        require(self.upsample_initial_channel >> len(self.upsample_rates) >= 1, "upsample_initial_channel",
                f"must be at least 2^{len(self.upsample_rates)}")
        require(len(self.resblock_kernel_sizes) == len(self.resblock_dilation_sizes) > 0,
                "resblock_dilation_sizes", "needs one dilation list per resblock kernel")
        wanted = RESBLOCK_DILATIONS[self.resblock]
        require(all(len(d) == wanted for d in self.resblock_dilation_sizes), "resblock_dilation_sizes",
                f'needs {wanted} dilations per kernel for resblock "{self.resblock}"')
        require(self.num_mels > 0, "num_mels", "must be positive")
        require(self.segment_size % self.hop_size == 0, "segment_size", "must be a multiple of hop_size")

    def mel_config(self) -> MelConfig:
        """The generator's input mel."""
        return MelConfig(self.n_fft, self.hop_size, self.win_size, self.num_mels, self.fmin, self.fmax)

    def loss_mel_config(self) -> MelConfig:
        """The mel of the training/validation L1 loss: fmax_for_loss, or sampling_rate / 2 when null."""
        fmax = self.sampling_rate / 2 if self.fmax_for_loss is None else self.fmax_for_loss
        return MelConfig(self.n_fft, self.hop_size, self.win_size, self.num_mels, self.fmin, fmax)


# ---------------------------------------------------------------------------------------------
# Generator


def wn_conv1d(channels_in: int, channels_out: int, kernel: int, dilation: int = 1) -> WeightNormConv:
    """A stride-1 'same' weight-normalised Conv1d, weights drawn from N(0, 0.01) as official."""
    conv = nn.Conv1d(channels_in, channels_out, kernel, dilation=dilation, padding=(kernel * dilation - dilation) // 2)
    nn.init.normal_(conv.weight, 0.0, INIT_STD)
    return WeightNormConv(conv)


class ResBlock1(nn.Module):
    """Per dilation: lrelu -> dilated conv (convs1) -> lrelu -> conv (convs2), plus the skip."""

    def __init__(self, channels: int, kernel: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(wn_conv1d(channels, channels, kernel, d) for d in dilations)
        self.convs2 = nn.ModuleList(wn_conv1d(channels, channels, kernel) for _ in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for first, second in zip(self.convs1, self.convs2):
            x = x + second(F.leaky_relu(first(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
        return x


class ResBlock2(nn.Module):
    """Per dilation: lrelu -> dilated conv (convs), plus the skip."""

    def __init__(self, channels: int, kernel: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(wn_conv1d(channels, channels, kernel, d) for d in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = x + conv(F.leaky_relu(x, LRELU_SLOPE))
        return x


RESBLOCKS = {"1": ResBlock1, "2": ResBlock2}


class Generator(nn.Module):
    """Mel (B, num_mels, T) -> waveform (B, 1, T * hop_size) in [-1, 1]."""

    def __init__(self, config: HiFiGANConfig) -> None:
        super().__init__()
        self.config = config
        width = config.upsample_initial_channel
        self.conv_pre = WeightNormConv(nn.Conv1d(config.num_mels, width, 7, padding=3))
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        block = RESBLOCKS[config.resblock]
        for i, (rate, kernel) in enumerate(zip(config.upsample_rates, config.upsample_kernel_sizes)):
            up = nn.ConvTranspose1d(width >> i, width >> (i + 1), kernel, rate, padding=(kernel - rate) // 2)
            nn.init.normal_(up.weight, 0.0, INIT_STD)
            self.ups.append(WeightNormConv(up))
            for k, dilations in zip(config.resblock_kernel_sizes, config.resblock_dilation_sizes):
                self.resblocks.append(block(width >> (i + 1), k, dilations))
        self.conv_post = wn_conv1d(width >> len(config.upsample_rates), 1, 7)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.conv_pre(mel)
        per_level = len(self.config.resblock_kernel_sizes)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            blocks = self.resblocks[i * per_level : (i + 1) * per_level]
            x = sum(block(x) for block in blocks) / per_level
        return torch.tanh(self.conv_post(F.leaky_relu(x, FINAL_LRELU_SLOPE)))

    def remove_weight_norm(self) -> None:
        """Fold every weight-norm pair into a plain weight (inference form; keys become `weight`)."""
        for module in self.modules():
            if isinstance(module, WeightNormConv):
                module.fold()


# ---------------------------------------------------------------------------------------------
# Official checkpoint I/O


def official_key_names(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename parametrizations.weight.original0/1 (newer torch) to weight_g/weight_v."""
    renamed = {}
    for key, value in state.items():
        for new, old in NEW_WEIGHT_NORM_NAMES.items():
            if key.endswith(new):
                key = key[: -len(new)] + old
        renamed[key] = value
    return renamed


def check_state_matches(expected: Mapping[str, torch.Tensor], found: Mapping[str, torch.Tensor], what: str) -> None:
    """One CheckpointError listing missing keys, unexpected keys and shape mismatches."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    shapes = [
        f"{k} expected {tuple(expected[k].shape)} found {tuple(found[k].shape)}"
        for k in expected
        if k in found and tuple(expected[k].shape) != tuple(found[k].shape)
    ]
    problems = [
        f"{len(items)} {label}: {', '.join(items[:4])}{', ...' if len(items) > 4 else ''}"
        for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes))
        if items
    ]
    if problems:
        raise CheckpointError(f"{what}: {'; '.join(problems)}")


def describe(config: HiFiGANConfig) -> str:
    return (
        f'resblock "{config.resblock}", upsample_initial_channel {config.upsample_initial_channel}, '
        f"upsample_rates {list(config.upsample_rates)}, num_mels {config.num_mels}"
    )


def load_generator(checkpoint_path: str | Path, config: HiFiGANConfig) -> Generator:
    """A Generator (weight norm kept) from an official `{'generator': state_dict}` file, loaded strictly."""
    payload = read_torch_file(checkpoint_path, "HiFi-GAN checkpoint")
    if not isinstance(payload, dict) or "generator" not in payload:
        found = sorted(payload)[:6] if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(
            f"HiFi-GAN checkpoint '{checkpoint_path}' has no 'generator' entry (expected the official "
            f"g_<step> layout {{'generator': state_dict}}, found {found})"
        )
    generator = Generator(config)
    state = official_key_names(payload["generator"])
    check_state_matches(
        generator.state_dict(),
        state,
        f"HiFi-GAN checkpoint '{checkpoint_path}' does not fit the config ({describe(config)}); use the config "
        "JSON saved with this checkpoint",
    )
    generator.load_state_dict(state)
    return generator
