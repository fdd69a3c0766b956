"""extract_codes: encode every training/validation mel in eval mode; stack the levels into one map.

Writes codes.npy (N, H, W) ints, labels.npy (N,) and splits.npy (N,) in prepare's index order,
and reports the latent bitrate and the codes' empirical entropy per level.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from foley.config import Config
from foley.models.builders import load_autoencoder
from foley.quantize.ema import codebook_usage
from foley.quantize.stacking import stack_levels
from foley.stages.context import StageContext, read_index
from foley.stages.stage import Stage
from foley.stages.train_vqvae import load_mels
from foley.util.atomic import save_npy_atomic

SPLITS = ("train", "val")


@torch.no_grad()
def run(config: Config, ctx: StageContext) -> dict:
    out = ctx.out
    model, section = load_autoencoder(ctx.input("train_vqvae", "vqvae.pt"))
    model.to(ctx.device).eval()
    rows = [r for r in read_index(ctx) if r["split"] in SPLITS]
    mels = load_mels(ctx, SPLITS)
    levels = []
    for first in range(0, len(mels), config.codes.batch_size):
        levels.append(model.encode(mels[first : first + config.codes.batch_size].to(ctx.device)).codes.cpu())
    codes = torch.cat(levels)
    maps = stack_levels(codes, config.codes.stack).numpy()
    dtype = np.int16 if model.quantizer.size <= np.iinfo(np.int16).max else np.int32
    save_npy_atomic(out / "codes.npy", maps.astype(dtype))
    save_npy_atomic(out / "labels.npy", np.array([int(r["class_id"]) for r in rows], dtype=np.int64))
    save_npy_atomic(out / "splits.npy", np.array([r["split"] for r in rows]))
    return {
        "map_shape": list(maps.shape[1:]),
        "levels": model.levels,
        "level_shape": list(codes.shape[2:]),
        "stack": config.codes.stack,
        "codebook_size": model.quantizer.size,
        **code_statistics(codes, model.quantizer.size, config.audio.clip_samples / config.audio.sample_rate),
    }


def code_statistics(codes: torch.Tensor, size: int, seconds: float) -> dict:
    """Latent bitrate (fixed-length codes) and the empirical per-level entropy of codes (B, L, h, w)."""
    usage = codebook_usage(codes, size)
    probs = usage["counts"].double() / usage["counts"].sum(1, keepdim=True)
    entropy_bits = [float(-(p[p > 0] * torch.log2(p[p > 0])).sum()) for p in probs]
    positions = codes.shape[2] * codes.shape[3]
    return {
        "bitrate_bps": codes.shape[1] * positions * math.log2(size) / seconds,
        "entropy_bits_per_code": entropy_bits,
        "entropy_bitrate_bps": sum(entropy_bits) * positions / seconds,
        "perplexity": [float(p) for p in usage["perplexity"]],
        "unused_codes": [int(u) for u in usage["unused"]],
    }


STAGE = Stage(
    name="extract_codes",
    sections=("codes", "audio"),
    upstream=("prepare", "train_vqvae"),
    outputs=("codes.npy", "labels.npy", "splits.npy"),
    run=run,
)
