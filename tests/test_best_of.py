"""sample.best_of: each clip the best of K candidate maps, by loudness or as the prior rates them (foley.sample.best_of)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from foley.config import load_config
from foley.models.builders import build_autoencoder
from foley.models.pixelsnail import PixelSNAIL
from foley.quantize.stacking import unstack_levels
from foley.sample.best_of import LoudnessRange, candidate_scores, loudness_features, pick, pick_by_loudness
from foley.sample.generate import generate
from foley.sample.reference import clip_seed, sample_reference
from foley.stages.sample import LOUDNESS_MAPS, Generator, generate_for, loudness_ranges, preflight
from foley.util.errors import ConfigError
from foley.vocoders.base import build_vocoder

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CLASSES = 3


def strong_prior(map_shape, vocab: int, label_dropout: float = 0.1) -> PixelSNAIL:
    """A random prior with a null label whose labels matter (a random one barely uses them)."""
    torch.manual_seed(0)
    prior = PixelSNAIL(map_shape, vocab, CLASSES, channel=8, kernel_size=3, n_block=1, n_res_block=1, res_channel=6,
                       attention=True, n_head=2, dropout=0.0, label_hidden=8, label_dropout=label_dropout).eval()
    with torch.no_grad():
        prior.embedNet.blocks[3].weight.mul_(30.0)
        prior.embedNet.blocks[3].bias.mul_(30.0)
    return prior


def scores_by_positions(prior: PixelSNAIL, maps: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The definition, position by position as the reference sampler sees them: the model on the rows so
    far; (B, 2): the summed log-probability of each code under the label, and that minus under the null label."""
    under = {"label": torch.zeros(len(maps), dtype=torch.float64), "null": torch.zeros(len(maps), dtype=torch.float64)}
    with torch.no_grad():
        for position in range(maps[0].numel()):
            row, col = divmod(position, maps.shape[2])
            code = maps[:, row, col].unsqueeze(1)
            for name, these in (("label", labels), ("null", prior.null_labels(len(maps)))):
                logits = prior(maps[:, : row + 1], these)[:, :, row, col]
                under[name] += F.log_softmax(logits, dim=1).gather(1, code).squeeze(1).double()
    return torch.stack([under["label"], under["label"] - under["null"]], dim=1)


def test_scores_are_the_log_likelihood_and_the_log_ratio_summed_over_positions():
    prior = strong_prior((3, 5), 9)
    labels = torch.tensor([0, 1, 2, 1])
    maps = sample_reference(prior, labels, [clip_seed(1, int(c), i) for i, c in enumerate(labels)])
    likelihood, evidence = candidate_scores(prior, maps, labels)
    assert likelihood.dtype == evidence.dtype == torch.float64 and likelihood.shape == evidence.shape == (4,)
    torch.testing.assert_close(torch.stack([likelihood, evidence], 1), scores_by_positions(prior, maps, labels),
                               rtol=0, atol=1e-4)


def test_pick_keeps_the_most_likely_candidate_above_the_evidence_floor():
    def kept(likelihood, evidence):
        return pick(torch.tensor(likelihood, dtype=torch.float64), torch.tensor(evidence, dtype=torch.float64))

    assert kept([-90.0, -150.0, -170.0], [9.0, 40.0, 70.0]) == 1  # the likeliest (-90) has under half of 70
    assert kept([-90.0, -150.0, -170.0], [36.0, 40.0, 70.0]) == 0  # now it has half: the likeliest is kept
    assert kept([-150.0, -150.0], [40.0, 70.0]) == 0  # ties: the first
    assert kept([-90.0, -150.0], [-12.0, -10.0]) == 0  # a negative largest: -12 >= -10 - 5
    assert kept([-90.0, -150.0], [-16.0, -10.0]) == 1  # the largest evidence is always eligible
    assert kept([-150.0], [-3.0]) == 0


def test_candidate_zero_is_the_clips_own_seed():
    assert clip_seed(3, 1, 7, 0) == clip_seed(3, 1, 7)
    assert len({clip_seed(3, 1, 7, j) for j in range(4)} | {clip_seed(3, 1, 8), clip_seed(3, 2, 7)}) == 6
    with pytest.raises(ValueError, match="candidate must be >= 0"):
        clip_seed(3, 1, 7, -1)


@pytest.fixture(scope="module")
def parts():
    config = load_config("quick", ["vocoder.griffinlim.n_iter=1", "autoencoder.channel=8", "sample.guidance=2",
                                   "sample.temperature=1.1", "sample.batch_size=3", "sample.best_of_by=prior"])
    torch.manual_seed(0)
    autoencoder = build_autoencoder(config.autoencoder, (config.mel.n_mels, 344)).eval()
    prior = strong_prior(config.map_shape, config.autoencoder.quantizer.codebook_size)
    return config, prior, autoencoder, build_vocoder(config)


def run_generate(parts, class_ids, indices, best_of: int, batch_size: int = 3, by: str = "prior", loudness=None):
    config, prior, autoencoder, vocoder = parts
    settings = dataclasses.replace(config.sample, best_of=best_of, batch_size=batch_size, best_of_by=by)
    return generate(prior, autoencoder, vocoder, class_ids, indices, 4, settings, "freq", config.audio.clip_samples,
                    progress=False, loudness=loudness)


def test_best_of_keeps_each_clips_best_candidate_and_one_is_plain_sampling(parts):
    config, prior, _, _ = parts
    class_ids, indices = [0, 0, 1, 2], [0, 1, 0, 3]
    plain = run_generate(parts, class_ids, indices, best_of=1)
    assert plain.scores is None and plain.chosen is None
    best = run_generate(parts, class_ids, indices, best_of=3)
    assert best.scores.shape == (4, 3, 2) and best.chosen.shape == (4,)
    assert best.chosen.tolist() != [0, 0, 0, 0]  # otherwise the test below shows nothing
    for n, (c, i) in enumerate(zip(class_ids, indices)):
        labels = torch.full((3,), c)
        candidates = sample_reference(prior, labels, [clip_seed(4, c, i, j) for j in range(3)], 1.1, 0, guidance=2.0)
        np.testing.assert_array_equal(candidates[0].numpy(), plain.codes[n])  # candidate 0: the plain draw
        scores = scores_by_positions(prior, candidates, labels)
        np.testing.assert_allclose(best.scores[n], scores.numpy(), atol=1e-4)
        assert best.chosen[n] == pick(scores[:, 0], scores[:, 1])
        np.testing.assert_array_equal(best.codes[n], candidates[best.chosen[n]].numpy())
    chosen = best.chosen == 0
    np.testing.assert_array_equal(best.audio[chosen], plain.audio[chosen])


def test_a_clip_does_not_depend_on_the_batch_or_the_other_clips(parts):
    together = run_generate(parts, [0, 1, 2, 2], [5, 5, 0, 1], best_of=2, batch_size=4)
    alone = run_generate(parts, [2], [1], best_of=2, batch_size=1)
    np.testing.assert_array_equal(alone.codes[0], together.codes[3])
    np.testing.assert_allclose(alone.scores[0], together.scores[3], rtol=0, atol=1e-4)  # batched: last bits differ
    assert alone.chosen[0] == together.chosen[3]
    np.testing.assert_array_equal(alone.audio[0], together.audio[3])


def test_best_of_needs_a_null_label_and_at_least_one():
    with pytest.raises(ConfigError, match="sample.best_of.*must be at least 1"):
        load_config("toy", ["sample.best_of=0"])
    with pytest.raises(ConfigError, match="sample.best_of_by.*must be one of loudness, prior"):
        load_config("toy", ["sample.best_of_by=loud"])
    with pytest.raises(ConfigError, match="sample.best_of 2 by prior needs a prior with a null label.*label_dropout"):
        preflight(load_config("toy", ["sample.best_of=2", "sample.best_of_by=prior", "prior.label_dropout=0"]))
    with pytest.raises(ConfigError, match="sample.guidance 2 and sample.best_of 2 by prior need a prior with a null"):
        preflight(load_config("toy", ["sample.best_of=2", "sample.guidance=2", "sample.best_of_by=prior",
                                      "prior.label_dropout=0"]))
    preflight(load_config("toy", ["sample.best_of=2", "prior.label_dropout=0.1"]))
    preflight(load_config("toy", ["sample.best_of=2", "sample.best_of_by=loudness", "prior.label_dropout=0"]))
    config = load_config("toy", ["sample.best_of=2", "sample.best_of_by=prior", "prior.label_dropout=0"])
    old_prior = strong_prior(config.map_shape, config.autoencoder.quantizer.codebook_size, label_dropout=0.0)
    with pytest.raises(ConfigError, match="best_of 2 by prior needs a prior trained with a null label.*prior.pt"):
        generate_for(config, Generator(None, None, old_prior), [0], [0], 0, progress=False, artifact=None)


def constant_mels(levels, n_mels=4, frames=5):
    """Clips whose every log-mel value is one level: peak and median frame energy both equal it."""
    return np.stack([np.full((n_mels, frames), level, dtype=np.float32) for level in levels])


def test_loudness_features_are_the_peak_and_the_median_frame_energy():
    mels = constant_mels([-5.0, 1.0])
    mels[0, 2, 3] = 2.0  # a one-bin spike in one frame of five: the peak, not the median frame
    mels[1, :, :3] = np.log([[1.0], [2.0], [3.0], [6.0]])  # three frames of energy log(mean(1, 2, 3, 6)) = log 3
    features = loudness_features(mels)
    assert features.dtype == np.float64 and features.shape == (2, 2)
    np.testing.assert_allclose(features, [[2.0, -5.0], [np.log(6.0), np.log(3.0)]], rtol=0, atol=1e-6)


def test_a_range_is_its_clips_quantiles_and_spreads():
    levels = np.arange(-10.0, 11.0)  # 21 clips: the 5 % quantile of -10..10 is -9, the 95 % one 9
    spread = float(levels.std())
    assert dataclasses.astuple(LoudnessRange.of(constant_mels(levels))) == pytest.approx((-9.0, 9.0, spread, spread))
    assert LoudnessRange.of(constant_mels([3.0])) == LoudnessRange(3.0, 3.0, 1e-3, 1e-3)  # one clip: floored spread


def test_a_candidate_misfits_by_how_far_it_lies_outside_in_spreads():
    fit = LoudnessRange(peak_low=0.0, median_high=-3.0, peak_spread=2.0, median_spread=0.5)
    inside = constant_mels([-4.0])
    inside[0, 0, 0] = 1.0  # peak 1 >= 0, median -4 <= -3
    silent = constant_mels([-4.0])  # peak -4: 4 below, 2 spreads
    stuck = constant_mels([-2.0])
    stuck[0, 0, 0] = 1.0  # median -2: 1 above, 2 spreads
    both = constant_mels([-2.5])  # peak 2.5 below (1.25) and median 0.5 above (1)
    np.testing.assert_allclose(fit.misfit(np.concatenate([inside, silent, stuck, both])), [0.0, 2.0, 2.0, 2.25])
    assert pick_by_loudness(np.array([2.0, 0.0, 0.0])) == 1  # the smallest, first on ties
    assert pick_by_loudness(np.array([0.0, 0.0])) == 0  # both inside: the clip's own draw


def decoded_candidates(parts, class_id: int, index: int, k: int):
    """The clip's k candidates as the reference sampler draws them, and each decoded alone."""
    config, prior, autoencoder, _ = parts
    maps = sample_reference(prior, torch.full((k,), class_id), [clip_seed(4, class_id, index, j) for j in range(k)],
                            1.1, 0, guidance=2.0)
    with torch.no_grad():
        mels = [autoencoder.decode_codes(unstack_levels(one, autoencoder.levels, "freq")).numpy() for one in maps.split(1)]
    return maps, np.concatenate(mels)


def test_best_of_by_loudness_keeps_each_clips_best_fitting_candidate(parts):
    class_ids, indices = [0, 0, 1, 2, 2], [0, 1, 0, 3, 4]
    drawn = [decoded_candidates(parts, c, i, 3) for c, i in zip(class_ids, indices)]
    peaks, medians = loudness_features(np.concatenate([mels for _, mels in drawn])).T
    # a range that about half of these candidates miss, on either side: the choice is not always candidate 0
    middle = LoudnessRange(float(np.median(peaks)), float(np.median(medians)), float(peaks.std()), float(medians.std()))
    loudness = {0: middle, 1: middle, 2: middle}
    best = run_generate(parts, class_ids, indices, best_of=3, by="loudness", loudness=loudness)
    plain = run_generate(parts, class_ids, indices, best_of=1)
    assert best.scores is None and best.misfits.shape == (5, 3) and best.chosen.shape == (5,)
    assert len(set(best.chosen.tolist())) > 1  # otherwise the test below shows little
    for n, (maps, mels) in enumerate(drawn):
        misfits = middle.misfit(mels)
        np.testing.assert_allclose(best.misfits[n], misfits, rtol=0, atol=1e-5)
        assert best.chosen[n] == int(np.argmin(misfits))
        np.testing.assert_array_equal(best.codes[n], maps[best.chosen[n]].numpy())
        np.testing.assert_array_equal(best.mels[n], mels[best.chosen[n]])
    chosen = best.chosen == 0
    np.testing.assert_array_equal(best.audio[chosen], plain.audio[chosen])  # candidate 0 kept: the plain clip
    alone = run_generate(parts, [2], [4], best_of=3, batch_size=1, by="loudness", loudness=loudness)
    np.testing.assert_array_equal(alone.audio[0], best.audio[4])
    with pytest.raises(ValueError, match="needs the loudness range of every generated class"):
        run_generate(parts, [0, 1], [0, 0], best_of=2, by="loudness", loudness={0: middle})


def test_loudness_ranges_come_from_the_classes_training_maps_decoded(toy_run):
    from foley.models.builders import load_autoencoder
    from foley.stages.api import load_run

    run = load_run(toy_run)
    autoencoder, _ = load_autoencoder(run.artifact("train_vqvae", "vqvae.pt"))
    codes, labels, splits = (np.load(run.artifact("extract_codes", f"{name}.npy")) for name in ("codes", "labels", "splits"))
    ranges = loudness_ranges(autoencoder.eval(), run.artifact, [2, 0, 2], run.config.sample, run.config.codes.stack)
    assert sorted(ranges) == [0, 2] and LOUDNESS_MAPS >= 4  # every toy training map counts
    for class_id in (0, 2):
        rows = np.flatnonzero((labels == class_id) & (splits == "train"))
        assert len(rows) > 0
        with torch.no_grad():
            mels = np.concatenate([autoencoder.decode_codes(unstack_levels(torch.as_tensor(codes[[r]]).long(),
                                                                           autoencoder.levels, run.config.codes.stack)).numpy()
                                   for r in rows])
        expected = LoudnessRange.of(mels)
        assert dataclasses.astuple(ranges[class_id]) == pytest.approx(dataclasses.astuple(expected), rel=1e-5, abs=1e-5)
