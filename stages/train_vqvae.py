"""train_vqvae: train the mel VQ-VAE / RVQ-VAE on the prepared training mels -> vqvae.pt."""

from __future__ import annotations

import logging

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

log = logging.getLogger(__name__)
LEARNED_FRACTION = 0.5  # a reconstruction error above this share of the average mel's error: not learned


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
    check = learning_check(summary, average_mel_error(mels, val), train.epochs)
    if check["warning"]:
        log.warning("train_vqvae: %s", check["warning"])
    return {"train_clips": len(mels), "val_clips": len(val), "amp": task.amp, "epochs": train.epochs, "final": summary,
            "average_mel_mse": check["average_mel_mse"], "learned": check["learned"]}


def average_mel_error(train: torch.Tensor, val: torch.Tensor) -> float:
    """The MSE of the trivial reconstruction, the training mels' average mel, on the validation mels
    (on the training mels when there are none): the error of a model that learned nothing."""
    target = val if len(val) else train
    average = train.mean(0, dtype=torch.float64).to(target.dtype)  # no float64 copy of a large set
    return float(((target - average) ** 2).mean(dtype=torch.float64))


def learning_check(summary: dict, average_mse: float, epochs: int) -> dict:
    """Whether the autoencoder learned: its last validation (else training) reconstruction MSE against
    the average mel's. A run whose first steps blew up can end stuck near a constant output, whose
    reconstructions, and so every generated clip, are one blur or silence."""
    mse = summary.get("val/recon/mse", summary.get("recon/mse"))
    learned = mse is None or mse < LEARNED_FRACTION * average_mse
    warning = None if learned else (
        f"the autoencoder did not learn: after {epochs} epoch{'s' * (epochs != 1)} its reconstruction MSE is "
        f"{mse:.3g}, against {average_mse:.3g} for always answering the average training mel, so its "
        f"reconstructions and every generated clip will be near-constant; train it longer, or again with a "
        f"learning-rate warm-up (autoencoder.train.warmup_steps, e.g. 50), a lower autoencoder.train.lr or another seed")
    return {"average_mel_mse": average_mse, "learned": learned, "warning": warning}


STAGE = Stage(
    name="train_vqvae",
    sections=("autoencoder", "seed", "amp", "train_speed"),
    upstream=("prepare",),
    outputs=OUTPUTS["train_vqvae"],
    run=run,
    distributed=True,  # trains on every process under torchrun
)
