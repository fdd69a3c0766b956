"""Quality floors: real clips carried through part of the generator, to be scored like generated clips.

vocoder floor:        real clip -> log-mel -> vocoder                      (what the vocoder alone loses)
reconstruction floor: real clip -> log-mel -> autoencoder -> vocoder       (what the codes lose on top)
For an autoencoder trained with quantizer dropout, the reconstruction floor is also made with the
first k levels only, k = 1..L-1 (`level_floors`: floors reconstruction_1 ...): what each level adds.
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
LEVEL_FLOOR = "reconstruction_{}"  # the reconstruction floor decoded with the first {} levels


def level_floors(autoencoder: Autoencoder) -> dict[str, int]:
    """Floor name -> levels decoded, for the first k = 1..L-1 levels of an autoencoder trained with
    quantizer dropout (none otherwise: its levels were never trained to decode alone)."""
    if getattr(autoencoder.quantizer, "dropout", 0.0) == 0:
        return {}
    return {LEVEL_FLOOR.format(k): k for k in range(1, autoencoder.levels)}


@torch.no_grad()
def reconstruct(mels: torch.Tensor, autoencoder: Autoencoder, batch_size: int, levels: int | None = None) -> torch.Tensor:
    """Log-mels (N, n_mels, T) -> encoded, quantised and decoded as generated clips are decoded,
    with the first `levels` quantizer levels (all by default)."""
    autoencoder.eval()
    device = next(autoencoder.parameters()).device
    out = [
        autoencoder.decode_codes(autoencoder.encode(mels[i : i + batch_size].to(device)).codes[:, :levels]).cpu()
        for i in range(0, len(mels), batch_size)
    ]
    return torch.cat(out) if out else mels[:0]


@torch.no_grad()
def reconstruction_errors(autoencoder: Autoencoder, mels: torch.Tensor, codes: torch.Tensor, batch_size: int) -> list[float]:
    """MSE between log-mels (N, n_mels, T) and their codes (N, L, h, w) decoded with the first k
    levels, for k = 1..L (the decoded mels floored as generated ones are)."""
    autoencoder.eval()
    device = next(autoencoder.parameters()).device
    sums = [0.0] * codes.shape[1]
    for first in range(0, len(mels), batch_size):
        target, batch = mels[first : first + batch_size].to(device), codes[first : first + batch_size].to(device)
        for k in range(1, codes.shape[1] + 1):
            sums[k - 1] += float((autoencoder.decode_codes(batch[:, :k]).float() - target).pow(2).sum())
    return [total / max(1, mels.numel()) for total in sums]


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
    levels: int | None = None,
) -> np.ndarray:
    """The floor's clips (N, num_samples) from real log-mels (N, n_mels, T); `levels`: how many
    quantizer levels the reconstruction floor decodes (all by default)."""
    if floor not in FLOORS:
        raise ValueError(f"unknown floor {floor!r}; floors are {', '.join(FLOORS)}")
    if floor == "reconstruction":
        mels = reconstruct(mels, autoencoder, batch_size, levels)
    return vocode(mels, vocoder, batch_size, num_samples, device)
