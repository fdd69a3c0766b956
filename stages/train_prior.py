"""train_prior: train the class-conditional PixelSNAIL on the stacked code maps -> prior.pt."""

from __future__ import annotations

import numpy as np
import torch

from foley.config import Config
from foley.models.builders import build_prior, prior_spec
from foley.stages.artifacts import OUTPUTS
from foley.stages.artifacts import PRIOR_FILE as MODEL_FILE
from foley.stages.context import StageContext, train_model
from foley.stages.stage import Stage
from foley.train.data import training_data
from foley.train.schedule import planned, schedule_for
from foley.train.tasks import PriorTask
from foley.util.device import tf32


def load_codes(ctx: StageContext, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    keep = np.load(ctx.input("extract_codes", "splits.npy")) == split
    codes = torch.from_numpy(np.load(ctx.input("extract_codes", "codes.npy"))[keep].astype(np.int64))
    labels = torch.from_numpy(np.load(ctx.input("extract_codes", "labels.npy"))[keep])
    return codes, labels


def run(config: Config, ctx: StageContext) -> dict:
    section = config.prior
    codes, labels = load_codes(ctx, "train")
    val = load_codes(ctx, "val")
    torch.manual_seed(config.seed)
    vocab_size = ctx.details("extract_codes")["codebook_size"]
    model = build_prior(section, tuple(codes.shape[1:]), vocab_size, config.class_count)
    model.to(ctx.device)
    spec = prior_spec(model, section)
    speed = config.train_speed
    train = planned(section.train, len(codes))
    task = PriorTask(model, train.lr, ctx.device, config.amp, val_set=val, val_batch_size=train.batch_size,
                     lr_factor=schedule_for(train, len(codes)), fast_path=speed.fast_path, compile=speed.compile)
    data = training_data((codes, labels), ctx.device, train.num_workers)
    with tf32(ctx.device, speed.tf32):
        summary = train_model(ctx, "prior", spec, model, task, data, train, config.seed, MODEL_FILE)
    parameters = sum(p.numel() for p in model.parameters())
    return {"train_maps": len(codes), "val_maps": len(val[0]), "parameters": parameters, "amp": task.amp, "epochs": train.epochs,
            "final": summary}


STAGE = Stage(
    name="train_prior",
    sections=("prior", "seed", "amp", "train_speed", "data.class_names"),
    upstream=("extract_codes",),
    outputs=OUTPUTS["train_prior"],
    run=run,
    distributed=True,  # trains on every process under torchrun
)
