"""train_vqvae: train the mel VQ-VAE / RVQ-VAE on the prepared training mels -> vqvae.pt."""

from __future__ import annotations

import numpy as np
import torch

from foley.config import Config
from foley.models.builders import autoencoder_spec, build_autoencoder
from foley.stages.artifacts import OUTPUTS
from foley.stages.artifacts import VQVAE_FILE as MODEL_FILE
from foley.stages.context import StageContext, read_index, train_model
from foley.stages.stage import Stage
from foley.train.data import training_data
from foley.train.schedule import planned, schedule_for
from foley.train.tasks import AutoencoderTask
from foley.util.device import tf32


def load_mels(ctx: StageContext, splits: tuple[str, ...]) -> torch.Tensor:
    """The prepared mels of the given splits, in memory, in index order."""
    rows = [int(r["row"]) for r in read_index(ctx) if r["split"] in splits]
    mels = np.load(ctx.input("prepare", "mels.npy"), mmap_mode="r")
    return torch.from_numpy(np.ascontiguousarray(mels[rows]))


def run(config: Config, ctx: StageContext) -> dict:
    section = config.autoencoder
    mels, val = load_mels(ctx, ("train",)), load_mels(ctx, ("val",))
    train = planned(section.train, len(mels))
    torch.manual_seed(config.seed)
    model = build_autoencoder(section, tuple(mels.shape[1:]))
    if section.standardize:
        model.set_standardization(mels)  # a resumed run loads the same values from its checkpoint
    model = model.to(ctx.device)
    spec = autoencoder_spec(model, section)
    task = AutoencoderTask(
        model, section.quantizer.commitment, train.lr, ctx.device, config.amp,
        val_mels=val, val_batch_size=train.batch_size, loss=section.loss,
        lr_factor=schedule_for(train, len(mels)),
        fast_path=config.train_speed.fast_path, compile=config.train_speed.compile,
    )
    data = training_data((mels,), ctx.device, train.num_workers, allow_resident=False)  # pinned batches
    with tf32(ctx.device, config.train_speed.tf32):
        summary = train_model(ctx, "autoencoder", spec, model, task, data, train, config.seed, MODEL_FILE)
    return {"train_clips": len(mels), "val_clips": len(val), "amp": task.amp, "epochs": train.epochs, "final": summary}


STAGE = Stage(
    name="train_vqvae",
    sections=("autoencoder", "seed", "amp", "train_speed"),
    upstream=("prepare",),
    outputs=OUTPUTS["train_vqvae"],
    run=run,
    distributed=True,  # trains on every process under torchrun
)
