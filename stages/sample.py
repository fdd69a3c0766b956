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
from foley.config import Config, SampleConfig
from foley.models.autoencoder import Autoencoder
from foley.models.builders import load_autoencoder, load_prior
from foley.sample.best_of import LoudnessRange
from foley.sample.generate import Generated, decode_maps, generate
from foley.stages.artifacts import OUTPUTS
from foley.stages.context import StageContext
from foley.stages.stage import Stage
from foley.util.atomic import save_npy_atomic
from foley.util.errors import ConfigError, RunError
from foley.vocoders.base import Vocoder, build_vocoder

log = logging.getLogger(__name__)
Artifact = Callable[..., Path]  # (stage, output=None) -> a declared output of a finished upstream stage


def null_label_needed_by(config: Config) -> str:
    """The sample settings that need a prior with a null label and the verb, e.g. "sample.guidance 2 needs"
    ("" when none does)."""
    uses = [f"sample.guidance {config.sample.guidance:g}"] if config.sample.guidance != 1 else []
    uses += [f"sample.best_of {config.sample.best_of} by prior"] if config.sample.picks_by == "prior" else []
    return f"{' and '.join(uses)} {'needs' if len(uses) == 1 else 'need'}" if uses else ""


def preflight(config: Config) -> None:
    """Refuse guidance and best_of before any stage runs when the configured prior will have no null label."""
    uses = null_label_needed_by(config)
    if uses and config.prior.label_dropout == 0:
        raise ConfigError(
            f"{uses} a prior with a null label, but prior.label_dropout is 0; "
            "set prior.label_dropout > 0 (e.g. --set prior.label_dropout=0.1), or sample.guidance to 1 and "
            "sample.best_of to 1 or sample.best_of_by to loudness"
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


LOUDNESS_MAPS = 256  # at most this many of a class's training maps (evenly spaced) set its loudness range


def loudness_ranges(autoencoder: Autoencoder, artifact: Artifact, class_ids: list[int], settings: SampleConfig,
                    stack: str) -> dict[int, LoudnessRange]:
    """Each class's loudness range (foley.sample.best_of): its training maps from extract_codes, decoded
    by the run's autoencoder with the levels the clips are decoded with."""
    codes = np.load(artifact("extract_codes", "codes.npy"))
    labels = np.load(artifact("extract_codes", "labels.npy"))
    train = np.load(artifact("extract_codes", "splits.npy")) == "train"
    device = next(autoencoder.parameters()).device
    ranges = {}
    for class_id in sorted(set(class_ids)):
        rows = np.flatnonzero(train & (labels == class_id))
        if len(rows) == 0:
            raise RunError(f"sample.best_of_by loudness needs training clips of class {class_id}, and extract_codes "
                           "has none; use sample.best_of_by prior or sample.best_of 1")
        rows = rows[:: -(-len(rows) // LOUDNESS_MAPS)]
        mels = []
        with torch.no_grad():
            for first in range(0, len(rows), 32):
                maps = torch.as_tensor(codes[rows[first : first + 32]], dtype=torch.long, device=device)
                mels.append(decode_maps(autoencoder, maps, stack, settings.levels).float().cpu().numpy())
        ranges[class_id] = LoudnessRange.of(np.concatenate(mels))
    return ranges


def generate_for(config: Config, generator: Generator, class_ids: list[int], indices: list[int],
                 seed: int, progress: bool, artifact: Artifact) -> Generated:
    """The clips; ConfigError when config.sample's guidance or best_of needs a null label the prior lacks.
    `artifact` gives the run's outputs (extract_codes' maps, for best_of by loudness)."""
    uses = null_label_needed_by(config)
    if uses and generator.prior.null_label is None:
        raise ConfigError(
            f"{uses} a prior trained with a null label, but this run's prior "
            "(train_prior/prior.pt) was trained with prior.label_dropout 0; use guidance 1 and best_of 1 or best_of_by "
            "loudness, or retrain it with prior.label_dropout > 0 (e.g. foley run --set prior.label_dropout=0.1)"
        )
    ranges = (loudness_ranges(generator.autoencoder, artifact, class_ids, config.sample, config.codes.stack)
              if config.sample.picks_by == "loudness" else None)
    return generate(
        generator.prior, generator.autoencoder, generator.vocoder, class_ids, indices, seed,
        config.sample, config.codes.stack, config.audio.clip_samples, progress=progress, amp=config.amp,
        loudness=ranges,
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
    result = generate_for(config, generator, class_ids, indices, config.seed, ctx.progress, ctx.input)
    for class_id, name in enumerate(config.data.eval_class_names):
        chunk = slice(class_id * per_class, (class_id + 1) * per_class)
        write_clips(out / "samples" / name, list(range(per_class)), result.audio[chunk], config.audio.sample_rate)
    save_npy_atomic(out / "codes.npy", result.codes)
    save_npy_atomic(out / "mels.npy", result.mels.astype(np.float32))
    log.info("sample: wrote %d clips per class to %s", per_class, out / "samples")
    levels = config.sample.levels or generator.autoencoder.levels
    return {"per_class": per_class, "vocoder": generator.vocoder.name, "sampler": "fast", "amp": result.amp,
            "levels_decoded": levels, "guidance": config.sample.guidance, "best_of": config.sample.best_of,
            "best_of_by": config.sample.best_of_by,
            **best_of_details(result)}


def best_of_details(result: Generated) -> dict:
    """With best_of > 1: how often each candidate was kept; by loudness, how many clips' first candidate
    and how many kept ones lie outside their class's range, and the mean misfits; by prior, the kept and
    first candidates' mean likelihood (nats per map) and evidence."""
    if result.chosen is None:
        return {}
    candidates = (result.misfits if result.scores is None else result.scores).shape[1]
    counts = {"kept_candidate_counts": np.bincount(result.chosen, minlength=candidates).tolist()}
    if result.misfits is not None:
        kept, first = result.misfits[np.arange(len(result.chosen)), result.chosen], result.misfits[:, 0]
        return {**counts, "outside_range_first": int((first > 0).sum()), "outside_range_kept": int((kept > 0).sum()),
                "misfit_mean_first": round(float(first.mean()), 3), "misfit_mean_kept": round(float(kept.mean()), 3)}
    kept = result.scores[np.arange(len(result.chosen)), result.chosen]
    first = result.scores[:, 0]
    return {**counts,
            "likelihood_mean_kept": round(float(kept[:, 0].mean()), 3),
            "likelihood_mean_first": round(float(first[:, 0].mean()), 3),
            "evidence_mean_kept": round(float(kept[:, 1].mean()), 3),
            "evidence_mean_first": round(float(first[:, 1].mean()), 3)}


STAGE = Stage(
    name="sample",
    sections=("sample", "vocoder", "seed", "amp", "audio", "mel", "codes.stack", "data.class_names",
              "data.eval_class_names"),
    upstream=("train_vqvae", "extract_codes", "train_prior", "train_vocoder"),
    outputs=OUTPUTS["sample"],
    run=run,
    preflight=preflight,
)
