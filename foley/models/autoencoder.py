"""The mel autoencoder of the DCASE baseline, generalised to any (freq, time) strides.

Encoder: four parallel branches summed. Each branch has one strided conv per configured stride
(channels halving towards the input, the last giving `channel`), a 3x3 conv, residual blocks and
a ReLU. The baseline's branches use kernels 4/2/6/8 at stride 2 (paddings 1/0/2/3); for stride s
on an axis a branch uses kernel k*s/2 with (k*s/2 - s) zeros of padding split over both sides, so
each strided conv outputs exactly input/stride. A 1x1 conv projects to the quantiser's dimension.
Decoder: 3x3 conv, residual blocks, ReLU, then one transposed conv per stride in reverse order
(kernel 2s, padding s/2; kernel 3, padding 1 where s = 1).
The (2,2),(2,2) configuration has exactly the baseline's layers. Inputs are padded with silence
(log 1e-5) up to a multiple of the total stride and outputs cropped back to the input shape.

`standardize=True` (not the baseline's) adds two buffers, the training mels' mean and standard
deviation (set once by `set_standardization` before training): the encoder sees
(mel - mean) / std and the decoder's output is mapped back by * std + mean, so the network starts
near the data's scale instead of spending its first epochs learning an offset of about -6 (and a
data-initialised codebook starts from the encoder's outputs on such inputs). Inputs and outputs
stay log-mels; without it the state dict is the baseline's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from foley.audio.mel import LOG_CLAMP
from foley.models.band_loss import MelBands
from foley.quantize.base import QuantizedResult, Quantizer
from foley.util import shapes

BRANCH_KERNELS = (4, 2, 6, 8)  # the baseline's kernels at stride 2
SILENCE = math.log(LOG_CLAMP)


class PaddedConv2d(nn.Conv2d):
    """A Conv2d whose zero padding may differ between the two sides of an axis."""

    def __init__(self, in_channels: int, out_channels: int, kernel: tuple[int, int], stride: tuple[int, int]):
        pad_f, pad_t = kernel[0] - stride[0], kernel[1] - stride[1]
        symmetric = pad_f % 2 == 0 and pad_t % 2 == 0
        super().__init__(in_channels, out_channels, kernel, stride=stride, padding=(pad_f // 2, pad_t // 2) if symmetric else 0)
        self.side_padding = None if symmetric else (pad_t // 2, pad_t - pad_t // 2, pad_f // 2, pad_f - pad_f // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x if self.side_padding is None else F.pad(x, self.side_padding))


class ResBlock(nn.Module):
    """relu(x) + conv1x1(relu(conv3x3(relu(x)))).

    The baseline's first ReLU is in place, so its skip connection carries relu(x); we keep that.
    """

    def __init__(self, channel: int, res_channel: int):
        super().__init__()
        self.conv = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(channel, res_channel, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(res_channel, channel, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        return x + self.conv[1:](x)


def branch_layers(
    in_channel: int, channel: int, base_kernel: int, strides: Sequence[tuple[int, int]], n_res_block: int, res_channel: int
) -> nn.Sequential:
    layers: list[nn.Module] = []
    widths = [channel // 2 ** (len(strides) - 1 - i) for i in range(len(strides))]
    previous = in_channel
    for width, stride in zip(widths, strides):
        kernel = (base_kernel * stride[0] // 2, base_kernel * stride[1] // 2)
        layers += [PaddedConv2d(previous, width, kernel, stride), nn.ReLU()]
        previous = width
    layers.append(nn.Conv2d(channel, channel, 3, padding=1))
    layers += [ResBlock(channel, res_channel) for _ in range(n_res_block)]
    layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    def __init__(self, in_channel, channel, n_res_block, res_channel, strides):
        super().__init__()
        self.branches = nn.ModuleList(
            branch_layers(in_channel, channel, k, strides, n_res_block, res_channel) for k in BRANCH_KERNELS
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sum(branch(x) for branch in self.branches)


def upsampling_conv(in_channel: int, out_channel: int, stride: tuple[int, int]) -> nn.ConvTranspose2d:
    kernel = tuple(3 if s == 1 else 2 * s for s in stride)
    padding = tuple(1 if s == 1 else s // 2 for s in stride)
    return nn.ConvTranspose2d(in_channel, out_channel, kernel, stride=stride, padding=padding)


class Decoder(nn.Module):
    def __init__(self, in_channel, out_channel, channel, n_res_block, res_channel, strides):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channel, channel, 3, padding=1)]
        layers += [ResBlock(channel, res_channel) for _ in range(n_res_block)]
        layers.append(nn.ReLU())
        width = channel
        for i, stride in enumerate(reversed(strides)):
            last = i == len(strides) - 1
            layers.append(upsampling_conv(width, out_channel if last else width // 2, stride))
            if not last:
                layers.append(nn.ReLU())
                width //= 2
        self.blocks = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


class Autoencoder(nn.Module):
    """mel (B, n_mels, frames) -> encoder -> quantiser -> decoder -> mel of the same shape."""

    def __init__(
        self,
        input_shape: tuple[int, int],
        strides: Sequence[tuple[int, int]],
        quantizer: Quantizer,
        channel: int = 128,
        n_res_block: int = 2,
        n_res_channel: int = 32,
        standardize: bool = False,
    ):
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.strides = [tuple(s) for s in strides]
        self.encoder = Encoder(1, channel, n_res_block, n_res_channel, self.strides)
        self.pre_quantize = nn.Conv2d(channel, quantizer.dim, 1)
        self.quantizer = quantizer
        self.decoder = Decoder(quantizer.dim, 1, channel, n_res_block, n_res_channel, self.strides)
        self.standardize = standardize
        if standardize:
            self.register_buffer("mel_mean", torch.tensor(0.0))
            self.register_buffer("mel_std", torch.tensor(1.0))

    def set_standardization(self, mels: torch.Tensor) -> None:
        """Set the standardisation buffers from the training mels (B, n_mels, frames): their mean and
        standard deviation over every value."""
        if not self.standardize:
            raise ValueError("this autoencoder was built without standardize")
        values = mels.double()
        self.mel_mean.fill_(values.mean().item())
        self.mel_std.fill_(max(values.std().item(), 1e-3))

    @property
    def latent_shape(self) -> tuple[int, int]:
        return shapes.latent_shape(self.input_shape, self.strides)

    @property
    def levels(self) -> int:
        return self.quantizer.level_count

    def encode(self, mel: torch.Tensor, levels: int | None = None) -> QuantizedResult:
        self._check_input(mel)
        height, width = shapes.padded_shape(self.input_shape, self.strides)
        x = F.pad(mel[:, None], (0, width - mel.shape[-1], 0, height - mel.shape[-2]), value=SILENCE)
        if self.standardize:
            x = (x - self.mel_mean) / self.mel_std
        return self.quantizer(self.pre_quantize(self.encoder(x)), levels)

    def decode(self, quantized: torch.Tensor) -> torch.Tensor:
        out = self.decoder(quantized)[:, 0, : self.input_shape[0], : self.input_shape[1]]
        return out * self.mel_std + self.mel_mean if self.standardize else out

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, L, h, w) -> mel (B, n_mels, frames), floored at the log-mel's minimum log(1e-5)."""
        return self.decode(self.quantizer.decode_codes(codes)).clamp(min=SILENCE)

    def forward(self, mel: torch.Tensor) -> tuple[torch.Tensor, QuantizedResult]:
        result = self.encode(mel)
        return self.decode(result.quantized), result

    def _check_input(self, mel: torch.Tensor) -> None:
        if mel.dim() != 3 or tuple(mel.shape[1:]) != self.input_shape:
            raise ValueError(f"expected mels (batch, {self.input_shape[0]}, {self.input_shape[1]}), got {tuple(mel.shape)}")


def autoencoder_loss(
    model: Autoencoder, mel: torch.Tensor, commitment_weight: float, bands: MelBands | None = None
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Named losses of one batch (`named_losses`) and its codes."""
    recon, result = model(mel)
    return named_losses(recon.float(), mel, result.commitment, commitment_weight, bands), result.codes


def named_losses(recon: torch.Tensor, mel: torch.Tensor, commitment: torch.Tensor, commitment_weight: float,
                 bands: MelBands | None = None) -> dict[str, torch.Tensor]:
    """loss = reconstruction + commitment_weight * commitment, where the reconstruction is the MSE,
    or with `bands` the band-weighted MSE (then each band's MSE is logged as recon/band_i too)."""
    mse = F.mse_loss(recon, mel)
    reconstruction, per_band = mse, {}
    if bands is not None:
        errors = bands.errors(recon, mel)
        reconstruction = bands.combine(errors)
        per_band = {f"recon/band_{i}": error for i, error in enumerate(errors)}
    return {"loss": reconstruction + commitment_weight * commitment, "recon/mse": mse, **per_band,
            "vq/commitment": commitment}
