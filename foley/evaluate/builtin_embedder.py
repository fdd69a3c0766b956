"""The built-in, weight-free, deterministic embedder used when no VGGish weights are given.

`builtin-mfcc-v1` takes the same 16 kHz windows as VGGish under either FAD protocol and turns
each into a 64-d vector: VGGish's own log-mel front end (foley.models.vggish_input: 25 ms frames every
10 ms, 64 mel bands), 20 MFCCs per frame (orthonormal DCT-II over the bands), then over the
window's frames the MFCCs' mean, standard deviation and mean absolute frame-to-frame change, and
the frame log-energy's mean, standard deviation, range and mean absolute change.
Its FADs are comparable only with each other, never with VGGish FADs.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import torch

from foley.models import vggish_input

N_MFCC = 20


class BuiltinEmbedder:
    name = "builtin-mfcc-v1"
    sample_rate = vggish_input.SAMPLE_RATE
    dim = 3 * N_MFCC + 4
    window = vggish_input.EXAMPLE_SAMPLES  # VGGish's 0.96 s examples under the standard protocol
    hop = vggish_input.EXAMPLE_HOP_SAMPLES

    @classmethod
    def load(cls, weights: Path | None, device: torch.device | str) -> BuiltinEmbedder:
        """Weight-free: `weights` is ignored; it computes on the device of the windows it gets."""
        return cls()

    @classmethod
    def random(cls, device: torch.device | str, seed: int) -> BuiltinEmbedder:
        return cls()

    def description(self) -> str:
        return f"{self.name} ({self.dim}-d MFCC and log-energy statistics per window, weight-free)"

    @torch.no_grad()
    def embed(self, windows: torch.Tensor) -> torch.Tensor:
        """Windows (N, S) at 16 kHz -> (N, 64) float32 on the windows' device."""
        mel = vggish_input.log_mel(windows).transpose(1, 2)  # (N, bands, frames) float64
        if mel.shape[-1] < 2:
            raise ValueError(f"windows of {windows.shape[-1]} samples give fewer than 2 frames")
        mfcc = dct_matrix(mel.shape[1], N_MFCC, mel.device) @ mel
        energy = torch.logsumexp(2 * mel, dim=1)
        features = [
            mfcc.mean(-1),
            mfcc.std(-1),
            mfcc.diff(dim=-1).abs().mean(-1),
            torch.stack([energy.mean(-1), energy.std(-1), energy.amax(-1) - energy.amin(-1),
                         energy.diff(dim=-1).abs().mean(-1)], 1),
        ]
        return torch.cat(features, 1).float()


@functools.lru_cache(maxsize=4)
def dct_matrix(n_in: int, n_out: int, device: torch.device) -> torch.Tensor:
    """Orthonormal DCT-II basis (n_out, n_in), float64."""
    n = torch.arange(n_in, dtype=torch.float64)
    k = torch.arange(n_out, dtype=torch.float64)[:, None]
    basis = torch.cos(math.pi / n_in * (n + 0.5) * k) * math.sqrt(2.0 / n_in)
    basis[0] /= math.sqrt(2.0)
    return basis.to(device)
