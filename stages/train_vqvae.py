"""train_vqvae: train the mel VQ-VAE / RVQ-VAE on the prepared training mels -> vqvae.pt."""

from __future__ import annotations

import numpy as np
import torch

from foley.checkpoint import checkpoint_header, model_payload
from foley.config import Config
from foley.models.builders import autoencoder_spec, build_autoencoder
from foley.tasks import AutoencoderTask
from foley.training import LoopPlan, fit
from stages.context import StageContext, read_index, write_trained_model

NAME = "train_vqvae"
SECTIONS = ("autoencoder", "seed", "amp")
DISTRIBUTED = True  # trains on every process under torchrun (stages.runner)
UPSTREAM = ("prepare",)


def load_mels(ctx: StageContext, splits: tuple[str, ...]) -> torch.Tensor:
    """The prepared mels of the given splits, in memory, in index order."""
    rows = [int(r["row"]) for r in read_index(ctx) if r["split"] in splits]
    mels = np.load(ctx.dir("prepare") / "mels.npy", mmap_mode="r")
    return torch.from_numpy(np.ascontiguousarray(mels[rows]))


def run(config: Config, ctx: StageContext) -> dict:
    out = ctx.dir(NAME)
    section = config.autoencoder
    train, val = load_mels(ctx, ("train",)), load_mels(ctx, ("val",))
    torch.manual_seed(config.seed)
    model = build_autoencoder(section, tuple(train.shape[1:])).to(ctx.device)
    spec = autoencoder_spec(model, section)
    task = AutoencoderTask(
        model, section.quantizer.commitment, section.train.lr, ctx.device, config.amp,
        val_mels=val, val_batch_size=section.train.batch_size,
    )
    plan = LoopPlan(
        train=section.train,
        seed=config.seed,
        checkpoint_path=out / "checkpoint.pt",
        metrics_path=out / "metrics.csv",
        checkpoint_header=checkpoint_header("autoencoder", spec),
        name=NAME,
        progress=ctx.progress,
    )
    summary = fit(task, torch.utils.data.TensorDataset(train), plan)
    write_trained_model(out / "vqvae.pt", model_payload("autoencoder", spec, model, metrics=summary), plan.checkpoint_path)
    return {"train_clips": len(train), "val_clips": len(val), "final": summary}
