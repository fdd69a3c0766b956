"""Clips from a trained prior + autoencoder + vocoder: codes -> unstacked levels -> mels -> audio.

Clip `index` of class `class_id` always comes from the seed clip_seed(seed, class_id, index),
so a clip does not depend on the batch size or on which other clips are generated with it.
Codes come from the fast sampler (foley.sample.fast), which draws the reference's maps. The prior
draws whole maps; with settings.levels = k > 0 only the first k quantizer levels are decoded
(for an autoencoder trained with quantizer dropout), so clips cost k levels' bitrate.
With settings.best_of = K > 1 each clip is the best of K candidate maps (foley.sample.best_of), by
their decoded clips' loudness against the class's range (settings.best_of_by "loudness") or as the
prior rates them ("prior"); candidate 0 is the clip's own draw, so K = 1 is plain sampling.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from foley.audio.clips import fit_length
from foley.config import SampleConfig
from foley.models.autoencoder import Autoencoder
from foley.quantize.stacking import unstack_levels
from foley.sample.best_of import LoudnessRange, candidate_scores, pick, pick_by_loudness
from foley.sample.fast import FastSampler
from foley.sample.reference import clip_seed
from foley.vocoders.base import Vocoder


@dataclass
class Generated:
    codes: np.ndarray  # (N, H, W) stacked code maps
    mels: np.ndarray  # (N, n_mels, frames) float32
    audio: np.ndarray  # (N, num_samples) float32
    amp: bool = False  # whether the sampler ran under bf16 autocast
    scores: np.ndarray | None = None  # (N, best_of, 2) likelihood and evidence of every candidate (best_of_by prior)
    misfits: np.ndarray | None = None  # (N, best_of) loudness misfit of every candidate (best_of_by loudness)
    chosen: np.ndarray | None = None  # (N,) the kept candidate of each clip (None at best_of 1)


def decode_maps(autoencoder: Autoencoder, maps: torch.Tensor, stack: str, levels: int = 0) -> torch.Tensor:
    """Stacked code maps (B, H, W) -> log-mels, decoding the first `levels` quantizer levels (0 = all)."""
    return autoencoder.decode_codes(unstack_levels(maps, autoencoder.levels, stack)[:, : levels or autoencoder.levels])


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
    amp: bool | str = False,
    loudness: Mapping[int, LoudnessRange] | None = None,
) -> Generated:
    """Generate clip indices[i] of class class_ids[i] for every i, sampling codes in batches of
    settings.batch_size and decoding and vocoding clip by clip (a clip's audio then does not depend on
    which clips share its batch: batched convolutions round differently).

    ``amp``: sample the prior under bf16 autocast when it is on a GPU (ignored on the CPU).
    ``loudness``: each class's range (class id -> LoudnessRange); needed by best_of > 1 by loudness.
    """
    device = next(prior.parameters()).device
    prior.eval()
    autoencoder.eval()
    sampler = FastSampler(prior, amp=amp)
    k = settings.best_of
    by_loudness = settings.picks_by == "loudness"
    if by_loudness and (loudness is None or not set(class_ids) <= set(loudness)):
        raise ValueError("best_of by loudness needs the loudness range of every generated class")

    def decode(one_map: torch.Tensor) -> torch.Tensor:  # one clip at a time: float rounding must not depend on the batch
        return decode_maps(autoencoder, one_map, stack, settings.levels)

    codes, mels, audio, scores, misfits, chosen = [], [], [], [], [], []
    starts = range(0, len(class_ids), settings.batch_size)
    for first in tqdm(starts, desc="generating", disable=not progress, leave=False):
        batch_classes = list(class_ids[first : first + settings.batch_size])
        batch_indices = list(indices[first : first + settings.batch_size])
        seeds = [clip_seed(seed, c, i, j) for c, i in zip(batch_classes, batch_indices) for j in range(k)]
        labels = torch.tensor(batch_classes, dtype=torch.long, device=device).repeat_interleave(k)
        candidates = sampler(labels, seeds, settings.temperature, settings.top_k, guidance=settings.guidance)
        candidates = candidates.view(len(batch_classes), k, *candidates.shape[1:])
        if k > 1 and not by_loudness:
            likelihood, evidence = candidate_scores(prior, candidates.flatten(0, 1), labels)
            batch_scores = torch.stack([likelihood, evidence], dim=1).view(len(batch_classes), k, 2)
            scores.append(batch_scores.cpu().numpy())
        for n, class_id in enumerate(batch_classes):
            if by_loudness:
                decoded = [decode(one_map) for one_map in candidates[n].split(1)]
                clip_misfits = loudness[class_id].misfit(np.concatenate([mel.float().cpu().numpy() for mel in decoded]))
                kept = pick_by_loudness(clip_misfits)
                misfits.append(clip_misfits)
                mel = decoded[kept]
            else:
                kept = pick(batch_scores[n, :, 0], batch_scores[n, :, 1]) if k > 1 else 0
                mel = decode(candidates[n, kept : kept + 1])
            chosen.append(kept)
            codes.append(candidates[n, kept].cpu().numpy())
            mels.append(mel.float().cpu().numpy())
            audio.append(fit_length(vocoder(mel)[0].float().cpu().numpy(), num_samples)[0])
    return Generated(
        codes=np.stack(codes), mels=np.concatenate(mels), audio=np.stack(audio), amp=sampler.amp,
        scores=np.concatenate(scores) if scores else None, misfits=np.stack(misfits) if misfits else None,
        chosen=np.array(chosen) if k > 1 else None,
    )
