"""HiFi-GAN's multi-period (MPD) and multi-scale (MSD) discriminators in the official layout.

State-dict keys are the official `mpd` / `msd` modules' (discriminators.N.convs.M.{bias,weight_g,
weight_v}, conv_post...; the first MSD scale spectral-normalised: weight_orig/weight_u/weight_v), and
parameters are registered in the official order, so a `do_<step>` file we write loads in the
official train.py, optimizer states included. `channel_divisor` > 1 narrows every layer for toy runs
and tests; only the default (1) matches the official shapes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from foley.models.normed_conv import NormedConv, SpectralNormConv, WeightNormConv

LRELU_SLOPE = 0.1
PERIODS = (2, 3, 5, 7, 11)
PERIOD_CHANNELS = (32, 128, 512, 1024, 1024)  # the last layer has stride 1
SCALE_CHANNELS = (128, 128, 256, 512, 1024, 1024, 1024)
SCALE_KERNELS = (15, 41, 41, 41, 41, 41, 5)
SCALE_STRIDES = (1, 2, 2, 4, 4, 1, 1)
SCALE_GROUPS = (1, 4, 16, 16, 16, 16, 1)
NUM_SCALES = 3


@dataclass
class DiscriminatorOutput:
    """One multi-discriminator's verdict on a batch: per sub-discriminator its flattened scores
    (B, n) and its feature maps (every layer's output after the activation, conv_post's last)."""

    scores: list[torch.Tensor]
    features: list[list[torch.Tensor]]


def _stack(layers: nn.ModuleList, post: NormedConv, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    features = []
    for layer in layers:
        x = F.leaky_relu(layer(x), LRELU_SLOPE)
        features.append(x)
    x = post(x)
    features.append(x)
    return torch.flatten(x, 1), features


class PeriodDiscriminator(nn.Module):
    """Folds the waveform into (T / period, period) and applies (5, 1) convolutions, stride 3."""

    def __init__(self, period: int, channel_divisor: int = 1) -> None:
        super().__init__()
        self.period = period
        widths = [1] + [c // channel_divisor for c in PERIOD_CHANNELS]
        strides = [3] * (len(PERIOD_CHANNELS) - 1) + [1]
        self.convs = nn.ModuleList(
            WeightNormConv(nn.Conv2d(c_in, c_out, (5, 1), (stride, 1), padding=(2, 0)))
            for c_in, c_out, stride in zip(widths, widths[1:], strides)
        )
        self.conv_post = WeightNormConv(nn.Conv2d(widths[-1], 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        batch, channels, length = audio.shape
        if length % self.period:
            audio = F.pad(audio, (0, self.period - length % self.period), mode="reflect")
        folded = audio.view(batch, channels, -1, self.period)
        return _stack(self.convs, self.conv_post, folded)


class ScaleDiscriminator(nn.Module):
    """Strided, grouped 1-D convolutions over the (possibly average-pooled) waveform."""

    def __init__(self, spectral: bool = False, channel_divisor: int = 1) -> None:
        super().__init__()
        norm = SpectralNormConv if spectral else WeightNormConv
        widths = [1] + [c // channel_divisor for c in SCALE_CHANNELS]
        for c_in, c_out, groups in zip(widths, widths[1:], SCALE_GROUPS):
            if c_in % groups or c_out % groups:
                raise ValueError(f"channel_divisor {channel_divisor} leaves {c_in} -> {c_out} channels, "
                                 f"not divisible into {groups} groups; use 1, 2, 4 or 8")
        layers = zip(widths, widths[1:], SCALE_KERNELS, SCALE_STRIDES, SCALE_GROUPS)
        self.convs = nn.ModuleList(
            norm(nn.Conv1d(c_in, c_out, kernel, stride, groups=groups, padding=kernel // 2))
            for c_in, c_out, kernel, stride, groups in layers
        )
        self.conv_post = norm(nn.Conv1d(widths[-1], 1, 3, 1, padding=1))

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return _stack(self.convs, self.conv_post, audio)


class MultiPeriodDiscriminator(nn.Module):
    def __init__(self, periods: tuple[int, ...] = PERIODS, channel_divisor: int = 1) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(PeriodDiscriminator(p, channel_divisor) for p in periods)

    def forward(self, audio: torch.Tensor) -> DiscriminatorOutput:
        """audio (B, 1, T) -> scores and feature maps of every period."""
        results = [d(audio) for d in self.discriminators]
        return DiscriminatorOutput([r[0] for r in results], [r[1] for r in results])


class MultiScaleDiscriminator(nn.Module):
    """Scale 0 sees the waveform (spectral norm), each next scale a 4-tap average pool (stride 2) of the previous."""

    def __init__(self, channel_divisor: int = 1) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(
            ScaleDiscriminator(spectral=i == 0, channel_divisor=channel_divisor) for i in range(NUM_SCALES)
        )

    def forward(self, audio: torch.Tensor) -> DiscriminatorOutput:
        """audio (B, 1, T) -> scores and feature maps of every scale."""
        scores, features = [], []
        for i, discriminator in enumerate(self.discriminators):
            if i:
                audio = F.avg_pool1d(audio, 4, 2, padding=2)
            score, feature = discriminator(audio)
            scores.append(score)
            features.append(feature)
        return DiscriminatorOutput(scores, features)
