"""Weight-normalised convolution and linear layers, causal convolutions, and weight-norm folding.

Weight norm (Salimans & Kingma 2016) writes a weight as ``g * v / ||v||``, the norm taken over
every dimension but the first (one norm per output channel). The layers hold ``weight_g`` and
``weight_v`` under those names, so their state-dict keys are those of
``torch.nn.utils.weight_norm`` (deprecated in recent torch). A convolution may carry a fixed
kernel mask, applied to ``v`` before normalising; masked entries never reach the output.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn
from torch.nn import functional as F


def _normalised(weight_v: torch.Tensor, weight_g: torch.Tensor) -> torch.Tensor:
    norm = weight_v.flatten(1).norm(dim=1)
    return weight_v * (weight_g / norm.view_as(weight_g))


def _reset_like_torch(weight: torch.Tensor, bias: torch.Tensor | None) -> None:
    """torch's default init of Conv2d / Linear (so training starts where the baseline's does)."""
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in = weight[0].numel()
        bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        nn.init.uniform_(bias, -bound, bound)


def _with_weights(layer: nn.Module, weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Module:
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
    return layer


class WeightNormConv2d(nn.Module):
    """A stride-1 2-D convolution with weight norm, an optional kernel mask and no padding."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: tuple[int, int],
        bias: bool = True,
        kernel_mask: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.kernel_size = tuple(kernel_size)
        weight = torch.empty(out_channels, in_channels, *self.kernel_size)
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        _reset_like_torch(weight, self.bias)
        if kernel_mask is not None and tuple(kernel_mask.shape) != self.kernel_size:
            raise ValueError(
                f"kernel_mask has shape {tuple(kernel_mask.shape)}, expected {self.kernel_size}"
            )
        mask = None if kernel_mask is None else kernel_mask.to(weight.dtype)
        self.register_buffer("kernel_mask", mask, persistent=False)
        # g starts at the norm of the unmasked kernel, as when the baseline masks v after wrapping.
        self.weight_g = nn.Parameter(weight.flatten(1).norm(dim=1).view(-1, 1, 1, 1))
        self.weight_v = nn.Parameter(weight)

    def weight(self) -> torch.Tensor:
        """The effective kernel: masked, then normalised."""
        weight_v = self.weight_v if self.kernel_mask is None else self.weight_v * self.kernel_mask
        return _normalised(weight_v, self.weight_g)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight(), self.bias)

    def folded(self) -> nn.Conv2d:
        """A plain Conv2d computing the same function (weight norm and mask baked in)."""
        out_channels, in_channels = self.weight_v.shape[:2]
        conv = nn.Conv2d(
            in_channels, out_channels, self.kernel_size, bias=self.bias is not None,
            device=self.weight_v.device, dtype=self.weight_v.dtype,
        )
        return _with_weights(conv, self.weight(), self.bias)


class WeightNormLinear(nn.Module):
    """A linear layer with weight norm."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        weight = torch.empty(out_features, in_features)
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        _reset_like_torch(weight, self.bias)
        self.weight_g = nn.Parameter(weight.norm(dim=1, keepdim=True))
        self.weight_v = nn.Parameter(weight)

    def weight(self) -> torch.Tensor:
        return _normalised(self.weight_v, self.weight_g)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight(), self.bias)

    def folded(self) -> nn.Linear:
        """A plain Linear computing the same function."""
        out_features, in_features = self.weight_v.shape
        linear = nn.Linear(
            in_features, out_features, bias=self.bias is not None,
            device=self.weight_v.device, dtype=self.weight_v.dtype,
        )
        return _with_weights(linear, self.weight(), self.bias)


class WNConv2d(nn.Module):
    """A weight-norm convolution without padding; a wrapper so names carry the baseline's ``.conv.``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: tuple[int, int] = (1, 1),
        bias: bool = True,
        kernel_mask: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.conv = WeightNormConv2d(in_channels, out_channels, kernel_size, bias, kernel_mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


PADDINGS = ("down", "downright", "causal")


class CausalConv2d(nn.Module):
    """A convolution whose output at (row, col) reads only rows <= row, padded to keep the size.

    ``down``: the kernel is centred on the column and ends on the current row. ``downright``: the
    kernel ends on the current row and column. ``causal``: as ``down``, with the current row's
    centre and right columns masked out, so only the left part of the current row is read.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: tuple[int, int], padding: str
    ) -> None:
        super().__init__()
        if padding not in PADDINGS:
            raise ValueError(f"padding '{padding}' is not one of {', '.join(PADDINGS)}")
        rows, cols = kernel_size
        self.kind = padding
        self.kernel_size = (rows, cols)
        if padding == "downright":
            self.pad = (cols - 1, 0, rows - 1, 0)
        else:
            self.pad = (cols // 2, cols // 2, rows - 1, 0)
        mask = None
        if padding == "causal":
            mask = torch.ones(rows, cols)
            mask[-1, cols // 2 :] = 0
        self.conv = WNConv2d(in_channels, out_channels, (rows, cols), kernel_mask=mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, self.pad))


WEIGHT_NORM_LAYERS = (WeightNormConv2d, WeightNormLinear)


def fold_weight_norm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every weight-norm layer replaced by its plain equivalent.

    The copy computes the same function without re-normalising weights on every call (what a
    sampler wants); its state dict no longer has ``weight_g`` / ``weight_v`` keys. The copy keeps
    the original's training/eval mode and device; ``model`` is left unchanged.
    """
    if isinstance(model, WEIGHT_NORM_LAYERS):
        return model.folded().train(model.training)
    folded = copy.deepcopy(model)
    _replace_in_place(folded)
    return folded


def _replace_in_place(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, WEIGHT_NORM_LAYERS):
            setattr(module, name, child.folded().train(child.training))
        else:
            _replace_in_place(child)
