"""HiFi-GAN training pieces, as the official train.py: losses, random segments, one step, validation
mel L1, and checkpoints in the official layout (`g_<step>`, `do_<step>`).

Official settings: AdamW (learning_rate, betas adam_b1/adam_b2, torch's default weight decay 0.01),
ExponentialLR(lr_decay) stepped once per epoch, discriminator optimiser over msd then mpd parameters,
least-squares adversarial losses, feature matching x 2 and mel L1 x 45 (mel with fmax_for_loss).
The loop (epochs, logging, cadence) belongs to the caller: call `train_step` per batch,
`HiFiGANOptimizers.end_epoch` after each epoch, `save_training_checkpoint` when due.
"""

from __future__ import annotations

import itertools
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.optim.lr_scheduler import ExponentialLR

from foley.audio.mel import log_mel
from foley.models.hifigan import Generator, HiFiGANConfig, check_state_matches, official_key_names
from foley.models.hifigan_discriminators import DiscriminatorOutput, MultiPeriodDiscriminator, MultiScaleDiscriminator
from foley.util.atomic import write_text_atomic
from foley.util.checkpoint import read_torch_file, save_checkpoint
from foley.util.distributed import unwrap
from foley.util.errors import CheckpointError
from foley.vocoders.hifigan_files import CONFIG_NAME, checkpoint_paths, complete_checkpoint_steps

MEL_LOSS_WEIGHT = 45.0
FEATURE_LOSS_WEIGHT = 2.0
PEAK_LEVEL = 0.95  # the official loader scales each clip to this peak
DISCRIMINATOR_KEYS = ("mpd", "msd", "optim_g", "optim_d", "steps", "epoch")
log = logging.getLogger(__name__)


@dataclass
class HiFiGANModels:
    """The generator and the two discriminators (in data-parallel training, their DDP wrappers)."""

    generator: Generator
    mpd: MultiPeriodDiscriminator
    msd: MultiScaleDiscriminator

    @property
    def config(self) -> HiFiGANConfig:
        return unwrap(self.generator).config

    def to(self, device: str | torch.device) -> HiFiGANModels:
        for module in (self.generator, self.mpd, self.msd):
            module.to(device)
        return self


@dataclass
class HiFiGANOptimizers:
    optim_g: torch.optim.AdamW
    optim_d: torch.optim.AdamW
    scheduler_g: ExponentialLR
    scheduler_d: ExponentialLR

    def end_epoch(self) -> None:
        self.scheduler_g.step()
        self.scheduler_d.step()


def build_models(config: HiFiGANConfig, channel_divisor: int = 1) -> HiFiGANModels:
    """Generator + official discriminators (channel_divisor > 1 narrows the discriminators for toy runs)."""
    return HiFiGANModels(Generator(config), MultiPeriodDiscriminator(channel_divisor=channel_divisor),
                         MultiScaleDiscriminator(channel_divisor=channel_divisor))


def build_optimizers(models: HiFiGANModels) -> HiFiGANOptimizers:
    config = models.config
    betas = (config.adam_b1, config.adam_b2)
    optim_g = torch.optim.AdamW(models.generator.parameters(), config.learning_rate, betas=betas)
    discriminator_parameters = itertools.chain(models.msd.parameters(), models.mpd.parameters())
    optim_d = torch.optim.AdamW(discriminator_parameters, config.learning_rate, betas=betas)
    return HiFiGANOptimizers(optim_g, optim_d, ExponentialLR(optim_g, config.lr_decay),
                             ExponentialLR(optim_d, config.lr_decay))


# ---------------------------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class VocoderBatch:
    mel: torch.Tensor  # (B, num_mels, frames) generator input (fmax)
    audio: torch.Tensor  # (B, samples) target waveform, samples = frames * hop_size
    loss_mel: torch.Tensor  # (B, num_mels, frames) mel of the target for the L1 loss (fmax_for_loss)


def peak_normalize(audio: torch.Tensor, peak: float = PEAK_LEVEL) -> torch.Tensor:
    """Scale each clip (last axis) so its largest magnitude is `peak`; silent clips stay silent."""
    largest = audio.abs().amax(dim=-1, keepdim=True)
    return torch.where(largest > 0, audio * (peak / largest.clamp_min(torch.finfo(audio.dtype).tiny)), audio)


def random_segments(clips: torch.Tensor, segment_size: int, rng: torch.Generator, first: int = 0,
                    total: int | None = None) -> torch.Tensor:
    """One random `segment_size` window per clip (B, T) -> (B, segment_size); short clips are zero-padded.

    The starts are drawn for a batch of `total` clips (default: B) of which `clips` are the ones
    from `first` on, so a clip's window does not depend on how its batch is split over processes.
    """
    if clips.shape[-1] < segment_size:
        return F.pad(clips, (0, segment_size - clips.shape[-1]))
    total = clips.shape[0] if total is None else total
    starts = torch.randint(0, clips.shape[-1] - segment_size + 1, (total,), generator=rng)[first : first + clips.shape[0]]
    return torch.stack([clip[start : start + segment_size] for clip, start in zip(clips, starts.tolist())])


def make_batch(audio: torch.Tensor, config: HiFiGANConfig) -> VocoderBatch:
    """Input and loss mels of waveforms (B, T), T a multiple of hop_size (e.g. random segments)."""
    return VocoderBatch(
        log_mel(audio, config.mel_config(), config.sampling_rate),
        audio,
        log_mel(audio, config.loss_mel_config(), config.sampling_rate),
    )


# ---------------------------------------------------------------------------------------------
# Losses (pure functions of discriminator outputs)


def discriminator_loss(real: DiscriminatorOutput, fake: DiscriminatorOutput) -> torch.Tensor:
    """Least squares: real scores towards 1, generated towards 0, summed over sub-discriminators."""
    return sum(torch.mean((1 - r) ** 2) + torch.mean(g**2) for r, g in zip(real.scores, fake.scores))


def adversarial_loss(fake: DiscriminatorOutput) -> torch.Tensor:
    """Least squares for the generator: generated scores towards 1."""
    return sum(torch.mean((1 - g) ** 2) for g in fake.scores)


def feature_matching_loss(real: DiscriminatorOutput, fake: DiscriminatorOutput) -> torch.Tensor:
    """Mean absolute difference of every feature map, summed, times 2."""
    pairs = zip(itertools.chain(*real.features), itertools.chain(*fake.features))
    return FEATURE_LOSS_WEIGHT * sum(torch.mean(torch.abs(r - g)) for r, g in pairs)


def train_step(models: HiFiGANModels, optimizers: HiFiGANOptimizers, batch: VocoderBatch,
               gradient_scale: float = 1.0) -> dict[str, float]:
    """One discriminator update then one generator update on a batch of segments; named losses.

    Both losses are multiplied by `gradient_scale` before backward (a rank's share of the global
    batch in data-parallel training, see foley.train.batches); the losses returned are unscaled.
    """
    config = models.config
    real = batch.audio[:, None]
    fake = models.generator(batch.mel)
    fake_mel = log_mel(fake[:, 0], config.loss_mel_config(), config.sampling_rate)

    optimizers.optim_d.zero_grad()
    d_mpd = discriminator_loss(models.mpd(real), models.mpd(fake.detach()))
    d_msd = discriminator_loss(models.msd(real), models.msd(fake.detach()))
    ((d_mpd + d_msd) * gradient_scale).backward()
    optimizers.optim_d.step()

    optimizers.optim_g.zero_grad()
    mel_l1 = F.l1_loss(batch.loss_mel, fake_mel)
    real_p, fake_p = models.mpd(real), models.mpd(fake)
    real_s, fake_s = models.msd(real), models.msd(fake)
    adv = adversarial_loss(fake_p) + adversarial_loss(fake_s)
    fm = feature_matching_loss(real_p, fake_p) + feature_matching_loss(real_s, fake_s)
    g_total = adv + fm + MEL_LOSS_WEIGHT * mel_l1
    (g_total * gradient_scale).backward()
    optimizers.optim_g.step()
    losses = {"d/total": d_mpd + d_msd, "d/mpd": d_mpd, "d/msd": d_msd, "g/total": g_total, "g/adv": adv,
              "g/fm": fm, "g/mel": MEL_LOSS_WEIGHT * mel_l1, "g/mel_l1": mel_l1}
    return {name: float(value.detach()) for name, value in losses.items()}


def validation_mel_l1(generator: Generator, clips: torch.Tensor, batch_size: int = 8) -> float:
    """Mean L1 between the loss mels of full clips (N, T) and of the generator's output from their mels."""
    config = generator.config
    was_training = generator.training
    generator.eval()
    device = next(generator.parameters()).device
    errors = []
    with torch.no_grad():
        for chunk in clips.to(device).split(batch_size):
            target = log_mel(chunk, config.loss_mel_config(), config.sampling_rate)
            fake = generator(log_mel(chunk, config.mel_config(), config.sampling_rate))[:, 0]
            produced = log_mel(fake, config.loss_mel_config(), config.sampling_rate)
            errors.append((target - produced).abs().mean(dim=(1, 2)))
    generator.train(was_training)
    return float(torch.cat(errors).mean())


# ---------------------------------------------------------------------------------------------
# Checkpoints in the official layout


@dataclass(frozen=True)
class TrainingProgress:
    steps: int  # the step last completed when the checkpoint was written
    epoch: int  # the epoch (0-based) in progress then; the scheduler had stepped this many times
    extra: dict = field(default_factory=dict)  # the do_ file's entries beyond the official ones

    @property
    def next_step(self) -> int:
        return self.steps + 1


def save_training_checkpoint(
    directory: str | Path, steps: int, epoch: int, models: HiFiGANModels, optimizers: HiFiGANOptimizers,
    extra: dict | None = None,
) -> tuple[Path, Path]:
    """Write g_{steps:08d} = {'generator'} then do_{steps:08d} = {'mpd', 'msd', 'optim_g', 'optim_d',
    'steps', 'epoch'} (plus `extra` entries, which the official code ignores), each atomically; a pair
    is complete once its do_ file exists."""
    clash = sorted(set(extra or {}) & set(DISCRIMINATOR_KEYS))
    if clash:
        raise ValueError(f"extra checkpoint entries must not replace official ones: {', '.join(clash)}")
    g_path, do_path = checkpoint_paths(directory, steps)
    save_checkpoint(g_path, {"generator": models.generator.state_dict()})
    save_checkpoint(do_path, {
        "mpd": models.mpd.state_dict(), "msd": models.msd.state_dict(),
        "optim_g": optimizers.optim_g.state_dict(), "optim_d": optimizers.optim_d.state_dict(),
        "steps": steps, "epoch": epoch, **(extra or {}),
    })
    return g_path, do_path


def save_training_config(directory: str | Path, config: HiFiGANConfig) -> Path:
    """The official config JSON of a training run, as config.json beside its checkpoints."""
    path = Path(directory) / CONFIG_NAME
    write_text_atomic(path, json.dumps(config.to_dict(), indent=2))
    return path


def prune_checkpoints(directory: str | Path, keep: int) -> list[int]:
    """Delete all but the newest `keep` complete g_/do_ pairs (keep 0: delete nothing); returns the deleted steps."""
    steps = complete_checkpoint_steps(directory)
    doomed = steps[:-keep] if keep else []
    for old in doomed:
        for path in checkpoint_paths(directory, old):
            path.unlink(missing_ok=True)
    return doomed


def load_training_checkpoint(
    directory: str | Path, models: HiFiGANModels, optimizers: HiFiGANOptimizers
) -> TrainingProgress | None:
    """Restore models and optimizers from the newest readable complete pair; None when there is none.

    A pair whose files are corrupt or truncated is named in a warning and the pair before it is
    used (keep_checkpoints >= 2 keeps one); an error when no pair can be read. The schedulers are
    rebuilt from `epoch`: the learning rates come from the saved optimizers (already decayed
    `epoch` times) and the next end_epoch decays them once more.
    """
    steps = complete_checkpoint_steps(directory)
    problems = []
    for candidate in reversed(steps):
        try:
            generator_state, state = _read_pair(directory, candidate)
        except CheckpointError as err:
            log.warning("%s; trying the checkpoint pair before it", err)
            problems.append(str(err))
            continue
        return _restore_pair(directory, candidate, generator_state, state, models, optimizers)
    if problems:
        raise CheckpointError(f"no readable checkpoint pair in '{directory}': {' and '.join(problems)}")
    return None


def _read_pair(directory: str | Path, steps: int) -> tuple[dict, dict]:
    g_path, do_path = checkpoint_paths(directory, steps)
    generator_state = read_torch_file(g_path, "HiFi-GAN generator checkpoint")
    state = read_torch_file(do_path, "HiFi-GAN discriminator/optimizer checkpoint")
    _require_keys(g_path, generator_state, ("generator",))
    _require_keys(do_path, state, DISCRIMINATOR_KEYS)
    return generator_state, state


def _restore_pair(directory: str | Path, steps: int, generator_state: dict, state: dict, models: HiFiGANModels,
                  optimizers: HiFiGANOptimizers) -> TrainingProgress:
    for name, module, source in (("generator", models.generator, generator_state), ("mpd", models.mpd, state),
                                 ("msd", models.msd, state)):
        weights = official_key_names(source[name])
        check_state_matches(module.state_dict(), weights, f"'{name}' in checkpoint '{directory}' step {steps}")
        module.load_state_dict(weights)
    for name in ("optim_g", "optim_d"):
        try:
            getattr(optimizers, name).load_state_dict(state[name])
        except (ValueError, KeyError) as err:
            where = checkpoint_paths(directory, steps)[1]
            raise CheckpointError(f"'{name}' in '{where}' does not fit the models ({err})") from None
    _rebuild_schedulers(optimizers, models.config, state["epoch"])
    extra = {key: value for key, value in state.items() if key not in DISCRIMINATOR_KEYS}
    return TrainingProgress(steps=int(state["steps"]), epoch=int(state["epoch"]), extra=extra)


def _require_keys(path: Path, payload: object, keys: tuple[str, ...]) -> None:
    found = sorted(payload) if isinstance(payload, dict) else type(payload).__name__
    if not isinstance(payload, dict) or any(k not in payload for k in keys):
        raise CheckpointError(f"'{path}' is not an official HiFi-GAN checkpoint: expected keys "
                              f"{', '.join(keys)}, found {found}")


def _rebuild_schedulers(optimizers: HiFiGANOptimizers, config: HiFiGANConfig, epoch: int) -> None:
    for name, optimizer in (("scheduler_g", optimizers.optim_g), ("scheduler_d", optimizers.optim_d)):
        scheduler = ExponentialLR(optimizer, config.lr_decay)  # keeps the restored lr
        scheduler.last_epoch = int(epoch)
        setattr(optimizers, name, scheduler)
