"""The built-in, weight-free, deterministic audio embedder used when no VGGish weights are given.

`builtin-mfcc-v1`: the clip's log-mel (our one mel function) is cut into 1 s windows at 0.5 s
steps (7 per 4 s clip, like the DCASE FAD protocol's framing); each window becomes a 64-d vector:
the mean, standard deviation and mean absolute frame-to-frame change of 20 MFCCs (orthonormal
DCT-II of the log-mel), plus the mean, standard deviation, range and mean change of the frame
log-energy. Numbers it gives are comparable only with themselves, never with VGGish FADs.
"""

from __future__ import annotations

import functools
import math

import torch

from foley.audio import log_mel
from foley.config import MelConfig

N_MFCC = 20


class BuiltinEmbedder:
    name = "builtin-mfcc-v1"
    dim = 3 * N_MFCC + 4

    def __init__(self, mel: MelConfig, sample_rate: int, window_s: float = 1.0, step_s: float = 0.5):
        self.mel, self.sample_rate = mel, sample_rate
        frames_per_second = sample_rate / mel.hop_length
        self.window = max(2, round(window_s * frames_per_second))
        self.step = max(1, round(step_s * frames_per_second))

    def description(self) -> str:
        return (
            f"{self.name}: {self.dim}-d per {self.window}-frame window at a {self.step}-frame step "
            "(MFCC mean/std/delta + log-energy statistics of the log-mel)"
        )

    @torch.no_grad()
    def embed(self, audio: torch.Tensor) -> torch.Tensor:
        """Waveforms (B, T) at sample_rate -> embeddings (B, windows, dim), float32."""
        mel = log_mel(audio, self.mel, self.sample_rate)
        frames = mel.shape[-1]
        if frames < self.window:
            raise ValueError(f"clips of {frames} frames are shorter than the {self.window}-frame window")
        mfcc = dct_matrix(self.mel.n_mels, N_MFCC, mel.device) @ mel
        energy = torch.logsumexp(2 * mel, dim=1, keepdim=True)
        windows = torch.cat([mfcc, energy], 1).unfold(2, self.window, self.step)  # (B, C, W, frames)
        mfcc_w, energy_w = windows[:, :N_MFCC], windows[:, N_MFCC]
        parts = [
            mfcc_w.mean(-1),
            mfcc_w.std(-1),
            mfcc_w.diff(dim=-1).abs().mean(-1),
            torch.stack(
                [
                    energy_w.mean(-1),
                    energy_w.std(-1),
                    energy_w.amax(-1) - energy_w.amin(-1),
                    energy_w.diff(dim=-1).abs().mean(-1),
                ],
                1,
            ),
        ]
        return torch.cat(parts, 1).transpose(1, 2).contiguous()


@functools.lru_cache(maxsize=4)
def dct_matrix(n_in: int, n_out: int, device: torch.device) -> torch.Tensor:
    """Orthonormal DCT-II basis (n_out, n_in)."""
    n = torch.arange(n_in, dtype=torch.float64)
    k = torch.arange(n_out, dtype=torch.float64)[:, None]
    basis = torch.cos(math.pi / n_in * (n + 0.5) * k) * math.sqrt(2.0 / n_in)
    basis[0] /= math.sqrt(2.0)
    return basis.float().to(device)
