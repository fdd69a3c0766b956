"""What a quantiser is to the rest of foley: the Quantizer protocol and its typed result.

The autoencoder quantises its latent (B, dim, H, W) with one; code extraction stacks its codes
(B, levels, H, W) into the prior's map; the generator decodes sampled codes back to vectors; the
usage statistics count codes per level. An implementation is an nn.Module (its buffers and
parameters are part of the autoencoder's checkpoint) registered by name in foley.registry.QUANTIZERS
and built from the config's `autoencoder.quantizer` section by `from_config`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import torch

if TYPE_CHECKING:
    from foley.config import QuantizerConfig


@dataclass
class QuantizedResult:
    quantized: torch.Tensor  # (B, D, H, W) what the decoder reads (straight-through in training)
    codes: torch.Tensor  # (B, L, H, W) code index per level, each in [0, size)
    commitment: torch.Tensor  # scalar loss pulling the encoder towards its codes (weighted by the config)


class Quantizer(Protocol):
    dim: int  # size of the vectors it quantises (the autoencoder's embed_dim)
    size: int  # codes per level: the vocabulary of the prior's map

    @property
    def level_count(self) -> int:
        """Levels of codes per position (1 for plain VQ); the prior's map stacks them."""

    def __call__(self, z: torch.Tensor, levels: int | None = None) -> QuantizedResult:
        """Quantise z (B, dim, H, W) with the first `levels` levels (all by default)."""

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, L, H, W) of the first L levels -> vectors (B, dim, H, W) for the decoder."""

    @classmethod
    def from_config(cls, dim: int, section: QuantizerConfig) -> Quantizer:
        """Build from the `autoencoder.quantizer` section for vectors of size `dim`."""
