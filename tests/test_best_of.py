"""sample.best_of: each clip the best of K candidate maps as the prior rates them (foley.sample.best_of)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from foley.config import load_config
from foley.models.builders import build_autoencoder
from foley.models.pixelsnail import PixelSNAIL
from foley.sample.best_of import candidate_scores, pick
from foley.sample.generate import generate
from foley.sample.reference import clip_seed, sample_reference
from foley.stages.sample import Generator, generate_for, preflight
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


def run_generate(parts, class_ids, indices, best_of: int, batch_size: int = 3):
    config, prior, autoencoder, vocoder = parts
    settings = dataclasses.replace(config.sample, best_of=best_of, batch_size=batch_size)
    return generate(prior, autoencoder, vocoder, class_ids, indices, 4, settings, "freq", config.audio.clip_samples,
                    progress=False)


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
