"""Weight- and spectral-normalised convolutions whose state dicts use torch's classic names.

torch.nn.utils.weight_norm is deprecated and its replacement names the pair
`parametrizations.weight.original0/1`; the official HiFi-GAN files (and the DCASE checkpoint) use the
classic `weight_g` / `weight_v` (and `weight_orig` / `weight_u` / `weight_v` for spectral norm).
These modules hold exactly those tensors, in the order torch registers them (bias first), so
state dicts and optimizer states line up with the official modules, without deprecation warnings.
"""

from __future__ import annotations

import abc
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

SPECTRAL_EPS = 1e-12  # torch's spectral_norm default

ConvModule = nn.Conv1d | nn.Conv2d | nn.ConvTranspose1d
_FUNCTIONAL = {nn.Conv1d: F.conv1d, nn.Conv2d: F.conv2d, nn.ConvTranspose1d: F.conv_transpose1d}


class NormedConv(nn.Module, abc.ABC):
    """A convolution computed functionally from `current_weight()`; built from a torch conv module
    whose hyper-parameters, bias and initial weight it takes over."""

    def __init__(self, conv: ConvModule) -> None:
        super().__init__()
        if type(conv) not in _FUNCTIONAL:
            raise TypeError(f"unsupported convolution {type(conv).__name__}; choose one of "
                            f"{', '.join(c.__name__ for c in _FUNCTIONAL)}")
        self.op: Callable[..., torch.Tensor] = _FUNCTIONAL[type(conv)]
        self.options = dict(stride=conv.stride, padding=conv.padding, dilation=conv.dilation, groups=conv.groups)
        if isinstance(conv, nn.ConvTranspose1d):
            self.options["output_padding"] = conv.output_padding
        self.bias = nn.Parameter(conv.bias.detach().clone())

    @abc.abstractmethod
    def current_weight(self) -> torch.Tensor:
        """The weight the convolution uses now."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x, self.current_weight(), self.bias, **self.options)


def norm_except_dim0(v: torch.Tensor) -> torch.Tensor:
    """L2 norm over every axis but the first, shaped (n, 1, ..., 1) like weight_g."""
    return v.flatten(1).norm(dim=1).view(-1, *([1] * (v.dim() - 1)))


class WeightNormConv(NormedConv):
    """weight = weight_g * weight_v / ||weight_v||, the norm over all axes but axis 0 (torch's and the
    official dim=0, which for a transposed convolution is its in-channel axis).

    `fold()` replaces the pair with a plain `weight` parameter, as torch's remove_weight_norm does.
    """

    def __init__(self, conv: ConvModule) -> None:
        super().__init__(conv)
        weight = conv.weight.detach()
        self.weight_g = nn.Parameter(norm_except_dim0(weight))
        self.weight_v = nn.Parameter(weight.clone())
        self.folded = False

    def current_weight(self) -> torch.Tensor:
        if self.folded:
            return self.weight
        return self.weight_v * (self.weight_g / norm_except_dim0(self.weight_v))

    def fold(self) -> None:
        if self.folded:
            return
        weight = self.current_weight().detach()
        del self.weight_g, self.weight_v
        self.weight = nn.Parameter(weight)
        self.folded = True


class SpectralNormConv(NormedConv):
    """weight = weight_orig / sigma, sigma estimated by one power iteration per training forward
    (buffers weight_u, weight_v updated in place; eval mode uses them as they are), as torch's
    spectral_norm with its defaults (dim 0, one iteration, eps 1e-12)."""

    def __init__(self, conv: ConvModule) -> None:
        super().__init__(conv)
        weight = conv.weight.detach()
        self.weight_orig = nn.Parameter(weight.clone())
        rows, cols = weight.flatten(1).shape
        self.register_buffer("weight_u", F.normalize(weight.new_empty(rows).normal_(), dim=0, eps=SPECTRAL_EPS))
        self.register_buffer("weight_v", F.normalize(weight.new_empty(cols).normal_(), dim=0, eps=SPECTRAL_EPS))

    def current_weight(self) -> torch.Tensor:
        matrix = self.weight_orig.flatten(1)
        u, v = self.weight_u, self.weight_v
        if self.training:
            with torch.no_grad():
                v.copy_(F.normalize(matrix.t() @ u, dim=0, eps=SPECTRAL_EPS))
                u.copy_(F.normalize(matrix @ v, dim=0, eps=SPECTRAL_EPS))
            u, v = u.clone(), v.clone()
        sigma = torch.dot(u, torch.mv(matrix, v))
        return self.weight_orig / sigma
