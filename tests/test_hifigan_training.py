"""HiFi-GAN discriminators, losses, segments, training step, validation and official-layout checkpoints."""

from __future__ import annotations

import dataclasses
import math
import warnings

import pytest
import torch
from torch import nn

from foley.audio.mel import log_mel
from foley.models.hifigan import HiFiGANConfig
from foley.models.hifigan_discriminators import DiscriminatorOutput, MultiPeriodDiscriminator, MultiScaleDiscriminator
from foley.models.normed_conv import SpectralNormConv
from foley.util.errors import CheckpointError
from foley.vocoders.hifigan_files import latest_checkpoint_steps
from foley.vocoders.hifigan_training import (
    HiFiGANModels,
    adversarial_loss,
    build_models,
    build_optimizers,
    discriminator_loss,
    feature_matching_loss,
    load_training_checkpoint,
    make_batch,
    peak_normalize,
    random_segments,
    save_training_checkpoint,
    train_step,
    validation_mel_l1,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SR = 22050
TOY = HiFiGANConfig(
    resblock="1", upsample_rates=(4, 4, 4), upsample_kernel_sizes=(8, 8, 8), upsample_initial_channel=32,
    resblock_kernel_sizes=(3, 5), resblock_dilation_sizes=((1, 3, 5), (1, 3, 5)), num_mels=32, sampling_rate=SR,
    n_fft=256, hop_size=64, win_size=256, fmin=0, fmax=8000, fmax_for_loss=None, segment_size=1024, batch_size=4,
    learning_rate=2e-4, adam_b1=0.8, adam_b2=0.99, lr_decay=0.999, seed=1234,
)


def synthetic_clips(count: int, samples: int = 4096, seed: int = 0) -> torch.Tensor:
    """Sums of two sinusoids plus noise, one fundamental per clip, peak-normalised as the official loader does."""
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(samples) / SR
    clips = [
        0.5 * torch.sin(2 * math.pi * f * t) + 0.3 * torch.sin(2 * math.pi * 2.7 * f * t + 1.0)
        + 0.05 * torch.randn(samples, generator=gen)
        for f in (220.0 + 170.0 * i for i in range(count))
    ]
    return peak_normalize(torch.stack(clips))


def toy_models(seed: int, config: HiFiGANConfig = TOY) -> HiFiGANModels:
    torch.manual_seed(seed)
    return build_models(config, channel_divisor=8)


def official_discriminator_shapes() -> tuple[dict, dict]:
    """Keys and shapes of the official mpd and msd state dicts, worked out from the architecture."""
    mpd, msd = {}, {}
    widths = [1, 32, 128, 512, 1024, 1024, 1]
    for n in range(5):
        for m, (c_in, c_out) in enumerate(zip(widths, widths[1:])):
            prefix, kernel = (f"discriminators.{n}.convs.{m}", 5) if m < 5 else (f"discriminators.{n}.conv_post", 3)
            mpd.update({f"{prefix}.bias": (c_out,), f"{prefix}.weight_g": (c_out, 1, 1, 1),
                        f"{prefix}.weight_v": (c_out, c_in, kernel, 1)})
    layers = [(1, 128, 15, 1), (128, 128, 41, 4), (128, 256, 41, 16), (256, 512, 41, 16), (512, 1024, 41, 16),
              (1024, 1024, 41, 16), (1024, 1024, 5, 1), (1024, 1, 3, 1)]
    for n in range(3):
        for m, (c_in, c_out, kernel, groups) in enumerate(layers):
            prefix = f"discriminators.{n}.convs.{m}" if m < 7 else f"discriminators.{n}.conv_post"
            msd[f"{prefix}.bias"] = (c_out,)
            if n == 0:
                msd.update({f"{prefix}.weight_orig": (c_out, c_in // groups, kernel), f"{prefix}.weight_u": (c_out,),
                            f"{prefix}.weight_v": (c_in // groups * kernel,)})
            else:
                msd.update({f"{prefix}.weight_g": (c_out, 1, 1), f"{prefix}.weight_v": (c_out, c_in // groups, kernel)})
    return mpd, msd


def test_discriminator_state_dicts_are_official():
    with torch.device("meta"):
        mpd, msd = MultiPeriodDiscriminator(), MultiScaleDiscriminator()
    expected_mpd, expected_msd = official_discriminator_shapes()
    assert [(k, tuple(v.shape)) for k, v in mpd.state_dict().items()] == list(expected_mpd.items())
    assert [(k, tuple(v.shape)) for k, v in msd.state_dict().items()] == list(expected_msd.items())


def test_spectral_norm_conv_matches_torch():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = torch.nn.utils.spectral_norm(nn.Conv1d(4, 6, 5, 2, groups=2, padding=2))
    ours = SpectralNormConv(nn.Conv1d(4, 6, 5, 2, groups=2, padding=2))
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(3, 4, 20)
    for _ in range(2):  # each training forward runs one power iteration on the buffers
        torch.testing.assert_close(ours(x), reference(x))
    torch.testing.assert_close(ours.weight_u, reference.weight_u)
    torch.testing.assert_close(ours.weight_v, reference.weight_v)
    ours.eval(), reference.eval()
    torch.testing.assert_close(ours(x), reference(x))
    torch.testing.assert_close(ours.weight_u, reference.weight_u)


def test_discriminator_outputs_cover_every_period_and_scale():
    models = toy_models(0)
    audio = torch.randn(2, 1, 1000)  # not a multiple of every period: reflect-padded
    periods, scales = models.mpd(audio), models.msd(audio)
    assert len(periods.scores) == 5 and [len(f) for f in periods.features] == [6] * 5
    assert len(scales.scores) == 3 and [len(f) for f in scales.features] == [8] * 3
    assert [f[0].shape[-1] for f in periods.features] == [2, 3, 5, 7, 11]
    assert [f[0].shape[-1] for f in scales.features] == [1000, 501, 251]  # 4-tap average pools, stride 2


def test_losses_are_least_squares_and_feature_matching():
    real = DiscriminatorOutput([torch.tensor([[1.0, 0.0]])], [[torch.ones(2, 3), torch.zeros(4)]])
    fake = DiscriminatorOutput([torch.tensor([[0.5, 0.5]])], [[torch.zeros(2, 3), torch.full((4,), 0.25)]])
    assert discriminator_loss(real, fake).item() == pytest.approx(0.5 + 0.25)
    assert adversarial_loss(fake).item() == pytest.approx(0.25)
    assert feature_matching_loss(real, fake).item() == pytest.approx(2 * (1.0 + 0.25))


def test_random_segments_are_windows_of_their_clips():
    clips = torch.arange(3 * 50, dtype=torch.float32).view(3, 50)
    segments = random_segments(clips, 20, torch.Generator().manual_seed(0))
    assert segments.shape == (3, 20)
    for clip, segment in zip(clips, segments):
        start = int(segment[0] - clip[0])
        assert 0 <= start <= 30 and torch.equal(segment, clip[start : start + 20])
    again = random_segments(clips, 20, torch.Generator().manual_seed(0))
    assert torch.equal(segments, again)
    padded = random_segments(clips[:, :12], 20, torch.Generator())
    assert torch.equal(padded[:, :12], clips[:, :12]) and not padded[:, 12:].any()


def test_peak_normalize_scales_each_clip():
    audio = torch.tensor([[0.1, -0.5, 0.2], [0.0, 0.0, 0.0]])
    assert torch.allclose(peak_normalize(audio), torch.tensor([[0.19, -0.95, 0.38], [0.0, 0.0, 0.0]]))


def test_training_lowers_validation_mel_l1():
    config = dataclasses.replace(TOY, learning_rate=1e-3)
    clips = synthetic_clips(6)
    train, val = clips[:4], clips[4:]
    models = toy_models(0, config)
    optimizers = build_optimizers(models)
    rng = torch.Generator().manual_seed(1)
    initial = validation_mel_l1(models.generator, val)
    for _ in range(10):
        losses = train_step(models, optimizers, make_batch(random_segments(train, config.segment_size, rng), config))
    assert set(losses) == {"d/total", "d/mpd", "d/msd", "g/total", "g/adv", "g/fm", "g/mel", "g/mel_l1"}
    assert all(math.isfinite(v) for v in losses.values())
    assert models.generator.training
    final = validation_mel_l1(models.generator, val)
    print(f"validation mel L1 {initial:.3f} -> {final:.3f}")
    assert final < 0.75 * initial  # without the mel loss these 10 steps reach only ~0.86 x


def test_step_reports_the_mel_l1_of_the_generator_before_its_update():
    models = toy_models(0)
    batch = make_batch(synthetic_clips(2, TOY.segment_size), TOY)
    with torch.no_grad():
        produced = log_mel(models.generator(batch.mel)[:, 0], TOY.loss_mel_config(), SR)
    expected = (produced - batch.loss_mel).abs().mean().item()
    losses = train_step(models, build_optimizers(models), batch)
    assert losses["g/mel_l1"] == pytest.approx(expected, rel=1e-5)
    assert losses["g/mel"] == pytest.approx(45 * expected, rel=1e-5)
    assert losses["d/total"] == pytest.approx(losses["d/mpd"] + losses["d/msd"], rel=1e-6)
    assert losses["g/total"] == pytest.approx(losses["g/adv"] + losses["g/fm"] + losses["g/mel"], rel=1e-5)


def run(models, optimizers, batches, steps, steps_per_epoch=2):
    """A minimal official-style loop over steps; returns the last step's losses."""
    for step in steps:
        losses = train_step(models, optimizers, batches[step])
        if (step + 1) % steps_per_epoch == 0:
            optimizers.end_epoch()
    return losses


def test_resume_continues_exactly_from_the_saved_step(tmp_path):
    rng = torch.Generator().manual_seed(3)
    clips = synthetic_clips(4)
    batches = [make_batch(random_segments(clips[:2], TOY.segment_size, rng), TOY) for _ in range(4)]
    models = toy_models(0)
    optimizers = build_optimizers(models)
    run(models, optimizers, batches, range(3))  # steps 0, 1 (end of epoch 0), 2
    save_training_checkpoint(tmp_path, 2, 1, models, optimizers)
    saved_lr = optimizers.optim_g.param_groups[0]["lr"]
    expected = run(models, optimizers, batches, [3])

    resumed = toy_models(1)  # different weights: everything must come from the files
    resumed_optimizers = build_optimizers(resumed)
    progress = load_training_checkpoint(tmp_path, resumed, resumed_optimizers)
    assert (progress.steps, progress.epoch, progress.next_step) == (2, 1, 3)
    assert resumed_optimizers.optim_d.param_groups[0]["lr"] == saved_lr == pytest.approx(2e-4 * 0.999)
    assert resumed_optimizers.scheduler_g.last_epoch == 1
    got = run(resumed, resumed_optimizers, batches, [progress.next_step])
    assert got == pytest.approx(expected, abs=1e-6)
    for module, other in ((models.generator, resumed.generator), (models.mpd, resumed.mpd), (models.msd, resumed.msd)):
        for (name, a), b in zip(module.state_dict().items(), other.state_dict().values()):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=0, msg=name)
    assert resumed_optimizers.optim_g.param_groups[0]["lr"] == optimizers.optim_g.param_groups[0]["lr"]
    assert resumed_optimizers.optim_g.param_groups[0]["lr"] == pytest.approx(2e-4 * 0.999**2)  # epoch 1 ended


def test_checkpoint_files_have_the_official_layout(tmp_path):
    models = toy_models(0)
    optimizers = build_optimizers(models)
    g_path, do_path = save_training_checkpoint(tmp_path, 1234, 5, models, optimizers)
    assert (g_path.name, do_path.name) == ("g_00001234", "do_00001234")
    generator = torch.load(g_path, weights_only=True)
    state = torch.load(do_path, weights_only=True)
    assert list(generator) == ["generator"] and "conv_pre.weight_g" in generator["generator"]
    assert sorted(state) == sorted(["mpd", "msd", "optim_g", "optim_d", "steps", "epoch"])
    assert (state["steps"], state["epoch"]) == (1234, 5)
    first_d_param = optimizers.optim_d.param_groups[0]["params"][0]
    assert first_d_param is models.msd.discriminators[0].convs[0].bias  # official order: msd, then mpd


def test_latest_complete_pair_wins(tmp_path):
    models = toy_models(0)
    optimizers = build_optimizers(models)
    assert latest_checkpoint_steps(tmp_path / "absent") is None
    assert load_training_checkpoint(tmp_path, models, optimizers) is None
    save_training_checkpoint(tmp_path, 5, 0, models, optimizers)
    save_training_checkpoint(tmp_path, 10, 1, models, optimizers)
    (tmp_path / "do_00000010").unlink()  # killed between writing g_ and do_
    (tmp_path / ".g_00000020.tmp").write_bytes(b"partial")
    assert latest_checkpoint_steps(tmp_path) == 5
    assert load_training_checkpoint(tmp_path, models, optimizers).steps == 5


def test_a_corrupt_newest_pair_falls_back_to_the_pair_before(tmp_path, caplog):
    models = toy_models(0)
    optimizers = build_optimizers(models)
    save_training_checkpoint(tmp_path, 5, 0, models, optimizers)
    save_training_checkpoint(tmp_path, 10, 1, models, optimizers)
    do_path = tmp_path / "do_00000010"
    do_path.write_bytes(do_path.read_bytes()[:1000])  # cut short
    assert load_training_checkpoint(tmp_path, toy_models(1), build_optimizers(models)).steps == 5
    assert f"'{do_path}' is corrupt, truncated" in caplog.text and "trying the checkpoint pair before it" in caplog.text
    (tmp_path / "g_00000005").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="no readable checkpoint pair"):
        load_training_checkpoint(tmp_path, models, optimizers)


def test_bad_training_checkpoints_are_named(tmp_path):
    models = toy_models(0)
    optimizers = build_optimizers(models)
    save_training_checkpoint(tmp_path, 1, 0, models, optimizers)
    torch.save({"mpd": {}, "steps": 1}, tmp_path / "do_00000001")
    with pytest.raises(CheckpointError, match="expected keys mpd, msd, optim_g, optim_d, steps, epoch"):
        load_training_checkpoint(tmp_path, models, optimizers)
    wider = build_models(TOY, channel_divisor=4)
    save_training_checkpoint(tmp_path, 2, 0, wider, build_optimizers(wider))
    with pytest.raises(CheckpointError, match=r"'mpd' .* shape mismatches: discriminators.0.convs.0.bias expected"):
        load_training_checkpoint(tmp_path, models, optimizers)
