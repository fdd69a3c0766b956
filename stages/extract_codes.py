"""extract_codes: encode every training/validation mel in eval mode; stack the levels into one map.

Writes codes.npy (N, H, W) ints, labels.npy (N,) and splits.npy (N,) in prepare's index order;
reports per level the latent bitrate, the codes' empirical entropy, perplexity and unused codes
(foley.quantize.statistics), and the reconstruction MSE of each split when decoding with the
first k levels, k = 1..L, also written to levels.csv.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from foley.config import Config
from foley.evaluate.floors import reconstruction_errors
from foley.models.builders import load_autoencoder
from foley.quantize.stacking import stack_levels
from foley.quantize.statistics import code_statistics
from foley.stages.artifacts import OUTPUTS
from foley.stages.context import StageContext, read_index
from foley.stages.stage import Stage
from foley.stages.train_vqvae import load_mels
from foley.util.atomic import save_npy_atomic, write_csv

SPLITS = ("train", "val")
log = logging.getLogger(__name__)


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
    statistics = code_statistics(codes, model.quantizer.size, config.audio.clip_samples / config.audio.sample_rate)
    masks = {split: torch.tensor([r["split"] == split for r in rows], dtype=torch.bool) for split in SPLITS}
    errors = {split: reconstruction_errors(model, mels[mask], codes[mask], config.codes.batch_size)
              for split, mask in masks.items() if mask.any()}
    write_csv(out / "levels.csv", *levels_table(statistics, errors))
    log.info("extract_codes: reconstruction MSE with 1..%d levels: %s", model.levels,
             "; ".join(f"{split} " + ", ".join(f"{e:.4f}" for e in values) for split, values in errors.items()))
    return {
        "map_shape": list(maps.shape[1:]),
        "levels": model.levels,
        "level_shape": list(codes.shape[2:]),
        "stack": config.codes.stack,
        "codebook_size": model.quantizer.size,
        **statistics,
        "reconstruction_mse_by_levels": errors,
    }


def levels_table(statistics: dict, errors: dict[str, list[float]]) -> tuple[tuple[str, ...], list[dict]]:
    """levels.csv: per number of levels k, the bitrates of the first k levels and each split's MSE."""
    fields = ("levels", "bitrate_bps", "entropy_bitrate_bps", *(f"recon_mse_{split}" for split in errors))
    rows = []
    for k in range(1, len(statistics["bitrate_bps_per_level"]) + 1):
        row = {"levels": k, "bitrate_bps": f"{sum(statistics['bitrate_bps_per_level'][:k]):.3f}",
               "entropy_bitrate_bps": f"{sum(statistics['entropy_bitrate_bps_per_level'][:k]):.3f}"}
        rows.append({**row, **{f"recon_mse_{split}": f"{values[k - 1]:.6f}" for split, values in errors.items()}})
    return fields, rows


STAGE = Stage(
    name="extract_codes",
    sections=("codes", "audio"),
    upstream=("prepare", "train_vqvae"),
    outputs=OUTPUTS["extract_codes"],
    run=run,
)
