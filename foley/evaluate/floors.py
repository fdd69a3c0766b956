"""Quality floors: real clips carried through part of the generator, to be scored like generated clips.

vocoder floor:        real clip -> log-mel -> vocoder                      (what the vocoder alone loses)
reconstruction floor: real clip -> log-mel -> autoencoder -> vocoder       (what the codes lose on top)
A generated clip can only score as well as its floors if the prior were perfect; the gaps between
the floors and the generated clips show where quality is lost.
"""

from __future__ import annotations

import numpy as np
import torch

from foley.audio.clips import fit_length
from foley.models.autoencoder import Autoencoder
from foley.vocoders.base import Vocoder

FLOORS = ("vocoder", "reconstruction")


@torch.no_grad()
def reconstruct(mels: torch.Tensor, autoencoder: Autoencoder, batch_size: int) -> torch.Tensor:
    """Log-mels (N, n_mels, T) -> encoded, quantised and decoded as generated clips are decoded."""
    autoencoder.eval()
    device = next(autoencoder.parameters()).device
    out = [
        autoencoder.decode_codes(autoencoder.encode(mels[i : i + batch_size].to(device)).codes).cpu()
        for i in range(0, len(mels), batch_size)
    ]
    return torch.cat(out) if out else mels[:0]


@torch.no_grad()
def vocode(mels: torch.Tensor, vocoder: Vocoder, batch_size: int, num_samples: int, device: torch.device) -> np.ndarray:
    """Log-mels (N, n_mels, T) -> float32 waveforms (N, num_samples), padded or cropped as generated clips."""
    audio = []
    for i in range(0, len(mels), batch_size):
        waves = vocoder(mels[i : i + batch_size].to(device)).float().cpu().numpy()
        audio += [fit_length(w, num_samples)[0] for w in waves]
    return np.stack(audio).astype(np.float32) if audio else np.zeros((0, num_samples), np.float32)


def floor_audio(
    floor: str,
    mels: torch.Tensor,
    autoencoder: Autoencoder,
    vocoder: Vocoder,
    batch_size: int,
    num_samples: int,
    device: torch.device,
) -> np.ndarray:
    """The floor's clips (N, num_samples) from real log-mels (N, n_mels, T)."""
    if floor not in FLOORS:
        raise ValueError(f"unknown floor {floor!r}; floors are {', '.join(FLOORS)}")
    if floor == "reconstruction":
        mels = reconstruct(mels, autoencoder, batch_size)
    return vocode(mels, vocoder, batch_size, num_samples, device)
