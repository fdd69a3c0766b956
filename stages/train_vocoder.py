"""train_vocoder: train a HiFi-GAN on the run's training clips, when the config asks for one.

With vocoder.type hifigan and vocoder.hifigan.checkpoint null, trains with the shared loop and
writes, in the official layout, g_<step> / do_<step> pairs and config.json (the newest g_ is
the run's vocoder), plus metrics.csv (epoch losses, lr, validation mel L1). A killed run resumes
from the newest pair. Otherwise there is nothing to train: the stage says why in its manifest and
finishes at once (a given checkpoint's config JSON is checked against the run's mel).
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from foley.config import Config, TrainConfig
from foley.models.hifigan import HiFiGANConfig
from foley.stages.artifacts import OUTPUTS
from foley.stages.context import StageContext, read_index
from foley.stages.stage import Stage
from foley.train.loop import LoopPlan, fit
from foley.util.distributed import on_main
from foley.vocoders.hifigan import check_mel_settings
from foley.vocoders.hifigan_files import latest_checkpoint_steps
from foley.vocoders.hifigan_task import ClipDataset, HiFiGANTask, training_config
from foley.vocoders.hifigan_training import build_models, save_training_config

log = logging.getLogger(__name__)


def run(config: Config, ctx: StageContext) -> dict:
    reason = nothing_to_train(config)
    if reason is not None:
        log.info("train_vocoder: nothing to train (%s)", reason)
        return {"trained": False, "reason": reason}
    out, train = ctx.out, config.vocoder.hifigan.train
    hifigan = training_config(config)
    train_clips, val_clips, val_source = clip_rows(ctx, train.val_clips)
    torch.manual_seed(config.seed)
    models = build_models(hifigan, channel_divisor=train.channel_divisor)
    val = _dataset(val_clips, config).all()
    task = HiFiGANTask(models, ctx.device, config.seed, val, train.epochs, train.validate_every, train.keep_checkpoints)
    untrained = task.validate()
    on_main(lambda: save_training_config(out, hifigan))
    plan = LoopPlan(
        train=TrainConfig(train.epochs, train.batch_size, hifigan.learning_rate, train.checkpoint_every, train.num_workers,
                          schedule="constant", warmup_steps=0),
        seed=config.seed,
        checkpoint_path=out,
        metrics_path=out / "metrics.csv",
        name=ctx.out.name,
        progress=ctx.progress,
    )
    summary = fit(task, _dataset(train_clips, config), plan)
    steps = latest_checkpoint_steps(out)
    log.info("train_vocoder: validation mel L1 %.4f untrained -> %.4f", untrained, summary["val/mel_l1"])
    return {
        "trained": True, "generator": f"g_{steps:08d}", "steps": task.steps, "train_clips": len(train_clips),
        "validation": val_source, "val_mel_l1_untrained": untrained, "val_mel_l1": summary["val/mel_l1"],
        "final": summary,
    }


def nothing_to_train(config: Config) -> str | None:
    """Why the stage has nothing to do, or None when it trains."""
    vocoder = config.vocoder
    if vocoder.type != "hifigan":
        return f"vocoder.type is {vocoder.type}"
    given = vocoder.hifigan
    if given.checkpoint is not None and given.config is not None:
        check_mel_settings(HiFiGANConfig.from_json(given.config), config, f"HiFi-GAN config '{given.config}'")
        return f"vocoder.hifigan.checkpoint is given ({given.checkpoint})"
    return None


def _dataset(rows: list[dict[str, str]], config: Config) -> ClipDataset:
    return ClipDataset([r["path"] for r in rows], config.audio.sample_rate, config.audio.clip_samples,
                       [int(r["offset"]) for r in rows])


def clip_rows(ctx: StageContext, val_clips: int) -> tuple[list[dict[str, str]], list[dict[str, str]], str]:
    """index.csv rows of the training clips, of the validation clips, and where the latter come from.

    Validation takes up to `val_clips` clips of the validation split, spread over it (the index is
    in class order); a run without one validates on as many training clips instead.
    """
    rows = read_index(ctx)
    train = [r for r in rows if r["split"] == "train"]
    val = [r for r in rows if r["split"] == "val"]
    pool, source = (val, "clips of the validation split") if val else (train, "training clips (no validation split)")
    picks = np.unique(np.linspace(0, len(pool) - 1, min(val_clips, len(pool))).round().astype(int))
    return train, [pool[i] for i in picks], f"{len(picks)} {source}"


STAGE = Stage(
    name="train_vocoder",
    sections=("vocoder.type", "vocoder.hifigan", "audio", "mel", "seed"),
    upstream=("prepare",),
    outputs=OUTPUTS["train_vocoder"],
    run=run,
    distributed=True,  # trains on every process under torchrun
)
