"""train_prior: train the class-conditional PixelSNAIL on the stacked code maps -> prior.pt."""

from __future__ import annotations

import numpy as np
import torch

from foley.config import Config
from foley.models.builders import build_prior, prior_spec
from foley.stages.context import StageContext, train_model
from foley.stages.manifest import stage_details
from foley.train.schedule import schedule_for
from foley.train.tasks import PriorTask

NAME = "train_prior"
SECTIONS = ("prior", "seed", "amp")
DISTRIBUTED = True  # trains on every process under torchrun (foley.stages.runner)
UPSTREAM = ("extract_codes",)


def load_codes(ctx: StageContext, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    folder = ctx.dir("extract_codes")
    keep = np.load(folder / "splits.npy") == split
    codes = torch.from_numpy(np.load(folder / "codes.npy")[keep].astype(np.int64))
    labels = torch.from_numpy(np.load(folder / "labels.npy")[keep])
    return codes, labels


def run(config: Config, ctx: StageContext) -> dict:
    section = config.prior
    codes, labels = load_codes(ctx, "train")
    val = load_codes(ctx, "val")
    torch.manual_seed(config.seed)
    vocab_size = stage_details(ctx.run_dir, "extract_codes")["codebook_size"]
    model = build_prior(section, tuple(codes.shape[1:]), vocab_size, config.class_count)
    model.to(ctx.device)
    spec = prior_spec(model, section)
    task = PriorTask(model, section.train.lr, ctx.device, config.amp, val_set=val, val_batch_size=section.train.batch_size,
                     lr_factor=schedule_for(section.train, len(codes)))
    summary = train_model(ctx, NAME, "prior", spec, model, task, torch.utils.data.TensorDataset(codes, labels), section.train, config.seed, "prior.pt")
    return {"train_maps": len(codes), "val_maps": len(val[0]), "parameters": sum(p.numel() for p in model.parameters()), "final": summary}
