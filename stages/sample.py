"""sample: sample.per_class clips per class -> samples/<class>/0001.wav (16-bit, mono, clip length).

Also keeps the stacked code maps (codes.npy) and decoded mels (mels.npy) of every clip, in the
order class 0 clip 1, class 0 clip 2, ...
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from foley.audio.clips import write_wav
from foley.config import Config
from foley.models.autoencoder import Autoencoder
from foley.models.builders import load_autoencoder, load_prior
from foley.sample.generate import Generated, generate
from foley.stages.artifacts import OUTPUTS
from foley.stages.context import StageContext
from foley.stages.stage import Stage
from foley.util.atomic import save_npy_atomic
from foley.util.errors import ConfigError
from foley.vocoders.base import Vocoder, build_vocoder

log = logging.getLogger(__name__)
Artifact = Callable[..., Path]  # (stage, output=None) -> a declared output of a finished upstream stage


def null_label_needed_by(config: Config) -> str:
    """The sample settings that need a prior with a null label and the verb, e.g. "sample.guidance 2 needs"
    ("" when none does)."""
    uses = [f"sample.guidance {config.sample.guidance:g}"] if config.sample.guidance != 1 else []
    uses += [f"sample.best_of {config.sample.best_of}"] if config.sample.best_of > 1 else []
    return f"{' and '.join(uses)} {'needs' if len(uses) == 1 else 'need'}" if uses else ""


def preflight(config: Config) -> None:
    """Refuse guidance and best_of before any stage runs when the configured prior will have no null label."""
    uses = null_label_needed_by(config)
    if uses and config.prior.label_dropout == 0:
        raise ConfigError(
            f"{uses} a prior with a null label, but prior.label_dropout is 0; "
            "set prior.label_dropout > 0 (e.g. --set prior.label_dropout=0.1), or sample.guidance and sample.best_of to 1"
        )


@dataclass
class Decoder:
    """Codes -> audio: the run's autoencoder and its vocoder."""

    autoencoder: Autoencoder
    vocoder: Vocoder


@dataclass
class Generator(Decoder):
    prior: torch.nn.Module


def load_decoder(config: Config, artifact: Artifact, device: torch.device) -> Decoder:
    """The run's autoencoder and the configured vocoder (given, or trained by the run), on `device`."""
    autoencoder, _ = load_autoencoder(artifact("train_vqvae", "vqvae.pt"))
    vocoder = build_vocoder(config, trained_dir=artifact("train_vocoder")).to(device)
    return Decoder(autoencoder.to(device), vocoder)


def load_generator(config: Config, artifact: Artifact, device: torch.device) -> Generator:
    """A finished run's prior, autoencoder and vocoder, on `device`."""
    decoder = load_decoder(config, artifact, device)
    prior, _ = load_prior(artifact("train_prior", "prior.pt"))
    return Generator(decoder.autoencoder, decoder.vocoder, prior.to(device))


def generate_for(config: Config, generator: Generator, class_ids: list[int], indices: list[int],
                 seed: int, progress: bool) -> Generated:
    """The clips; ConfigError when config.sample's guidance or best_of needs a null label the prior lacks."""
    uses = null_label_needed_by(config)
    if uses and generator.prior.null_label is None:
        raise ConfigError(
            f"{uses} a prior trained with a null label, but this run's prior "
            "(train_prior/prior.pt) was trained with prior.label_dropout 0; use guidance 1 and best_of 1, or retrain "
            "it with prior.label_dropout > 0 (e.g. foley run --set prior.label_dropout=0.1)"
        )
    return generate(
        generator.prior, generator.autoencoder, generator.vocoder, class_ids, indices, seed,
        config.sample, config.codes.stack, config.audio.clip_samples, progress=progress, amp=config.amp,
    )


def write_clips(folder: Path, indices: list[int], audio: np.ndarray, sample_rate: int) -> list[Path]:
    """Clip index i (0-based) -> folder/{i+1:04d}.wav."""
    paths = [folder / f"{i + 1:04d}.wav" for i in indices]
    for path, clip in zip(paths, audio):
        write_wav(path, clip, sample_rate)
    return paths


def run(config: Config, ctx: StageContext) -> dict:
    out = ctx.out
    generator = load_generator(config, ctx.input, ctx.device)
    per_class = config.sample.per_class
    class_ids = [c for c in range(config.class_count) for _ in range(per_class)]
    indices = [i for _ in range(config.class_count) for i in range(per_class)]
    result = generate_for(config, generator, class_ids, indices, config.seed, ctx.progress)
    for class_id, name in enumerate(config.data.eval_class_names):
        chunk = slice(class_id * per_class, (class_id + 1) * per_class)
        write_clips(out / "samples" / name, list(range(per_class)), result.audio[chunk], config.audio.sample_rate)
    save_npy_atomic(out / "codes.npy", result.codes)
    save_npy_atomic(out / "mels.npy", result.mels.astype(np.float32))
    log.info("sample: wrote %d clips per class to %s", per_class, out / "samples")
    levels = config.sample.levels or generator.autoencoder.levels
    return {"per_class": per_class, "vocoder": generator.vocoder.name, "sampler": "fast", "amp": result.amp,
            "levels_decoded": levels, "guidance": config.sample.guidance, "best_of": config.sample.best_of,
            **best_of_details(result)}


def best_of_details(result: Generated) -> dict:
    """With best_of > 1: how often each candidate was kept, and the kept and first candidates' mean
    likelihood (nats per map) and evidence."""
    if result.scores is None:
        return {}
    kept = result.scores[np.arange(len(result.chosen)), result.chosen]
    first = result.scores[:, 0]
    return {"kept_candidate_counts": np.bincount(result.chosen, minlength=result.scores.shape[1]).tolist(),
            "likelihood_mean_kept": round(float(kept[:, 0].mean()), 3),
            "likelihood_mean_first": round(float(first[:, 0].mean()), 3),
            "evidence_mean_kept": round(float(kept[:, 1].mean()), 3),
            "evidence_mean_first": round(float(first[:, 1].mean()), 3)}


STAGE = Stage(
    name="sample",
    sections=("sample", "vocoder", "seed", "amp", "audio", "mel", "codes.stack", "data.class_names",
              "data.eval_class_names"),
    upstream=("train_vqvae", "train_prior", "train_vocoder"),
    outputs=OUTPUTS["sample"],
    run=run,
    preflight=preflight,
)
