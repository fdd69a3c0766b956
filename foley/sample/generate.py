"""Clips from a trained prior + autoencoder + vocoder: codes -> unstacked levels -> mels -> audio.

Clip `index` of class `class_id` always comes from the seed clip_seed(seed, class_id, index),
so a clip does not depend on the batch size or on which other clips are generated with it.
Codes come from the fast sampler (foley.sample.fast), which draws the reference's maps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from foley.audio.clips import fit_length
from foley.config import SampleConfig
from foley.models.autoencoder import Autoencoder
from foley.quantize.stacking import unstack_levels
from foley.sample.fast import FastSampler
from foley.sample.reference import clip_seed
from foley.vocoders.build import Vocoder


@dataclass
class Generated:
    codes: np.ndarray  # (N, H, W) stacked code maps
    mels: np.ndarray  # (N, n_mels, frames) float32
    audio: np.ndarray  # (N, num_samples) float32


@torch.no_grad()
def generate(
    prior: torch.nn.Module,
    autoencoder: Autoencoder,
    vocoder: Vocoder,
    class_ids: Sequence[int],
    indices: Sequence[int],
    seed: int,
    settings: SampleConfig,
    stack: str,
    num_samples: int,
    progress: bool = True,
    amp: bool = False,
) -> Generated:
    """Generate clip indices[i] of class class_ids[i] for every i, in batches of settings.batch_size.

    ``amp``: sample the prior under bf16 autocast when it is on a GPU (ignored on the CPU).
    """
    device = next(prior.parameters()).device
    prior.eval()
    autoencoder.eval()
    sampler = FastSampler(prior, amp=amp and device.type == "cuda")
    codes, mels, audio = [], [], []
    starts = range(0, len(class_ids), settings.batch_size)
    for first in tqdm(starts, desc="generating", disable=not progress, leave=False):
        batch_classes = list(class_ids[first : first + settings.batch_size])
        batch_indices = list(indices[first : first + settings.batch_size])
        seeds = [clip_seed(seed, c, i) for c, i in zip(batch_classes, batch_indices)]
        labels = torch.tensor(batch_classes, dtype=torch.long, device=device)
        maps = sampler(labels, seeds, settings.temperature, settings.top_k, guidance=settings.guidance)
        mel = autoencoder.decode_codes(unstack_levels(maps, autoencoder.levels, stack))
        wave = vocoder(mel)
        codes.append(maps.cpu().numpy())
        mels.append(mel.float().cpu().numpy())
        audio += [fit_length(w, num_samples)[0] for w in wave.float().cpu().numpy()]
    return Generated(codes=np.concatenate(codes), mels=np.concatenate(mels), audio=np.stack(audio))
