"""Classifier-free guidance: the null label, label dropout, guided sampling (reference = fast), old priors."""

from __future__ import annotations

import pytest
import torch

from foley.config import load_config
from foley.models.builders import build_prior, load_prior, prior_spec
from foley.models.pixelsnail import PixelSNAIL
from foley.sample.fast import FastSampler
from foley.sample.reference import choose_codes, clip_seed, clip_uniforms, sample_reference
from foley.util.checkpoint import model_payload, save_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")

VOCAB, CLASSES = 9, 3


def prior_with(label_dropout: float, map_shape=(3, 5), seed: int = 0, attention: bool = True,
               label_channels: int = 1) -> PixelSNAIL:
    torch.manual_seed(seed)
    return PixelSNAIL(map_shape, VOCAB, CLASSES, channel=8, kernel_size=3, n_block=1, n_res_block=1, res_channel=6,
                      attention=attention, n_head=2, dropout=0.1, label_hidden=8, label_dropout=label_dropout,
                      label_channels=label_channels).eval()


LABELS = torch.tensor([0, 1, 2, 1])
SEEDS = [clip_seed(5, int(label), i) for i, label in enumerate(LABELS)]
# Recorded with foley before guidance existed (commit b42888c): prior_with(0.0), LABELS, SEEDS.
MAPS_BEFORE_GUIDANCE = [
    [[6, 4, 5, 5, 5], [5, 3, 3, 1, 3], [6, 3, 5, 1, 0]], [[8, 2, 5, 6, 2], [7, 3, 1, 3, 8], [5, 3, 6, 2, 6]],
    [[1, 2, 5, 3, 6], [4, 2, 1, 3, 5], [4, 4, 5, 7, 1]], [[2, 2, 2, 6, 5], [5, 6, 3, 2, 4], [2, 3, 3, 4, 4]],
]
# The same, at temperature 0.7 and top-k 4 (reference sampler).
MAPS_BEFORE_GUIDANCE_T07_K4 = [
    [[5, 1, 5, 2, 5], [2, 1, 2, 1, 5], [6, 5, 2, 2, 6]], [[6, 2, 5, 5, 2], [4, 5, 5, 5, 1], [6, 2, 6, 2, 1]],
    [[5, 2, 5, 1, 2], [2, 2, 5, 2, 5], [5, 5, 5, 6, 1]], [[2, 5, 5, 5, 2], [2, 2, 2, 5, 1], [2, 1, 6, 5, 2]],
]


def test_without_label_dropout_the_model_is_todays():
    prior = prior_with(0.0)
    assert prior.null_label is None and prior.n_labels == CLASSES
    assert prior.state_dict()["embedNet.blocks.0.weight"].shape == (8, CLASSES)
    with pytest.raises(ValueError, match="no null label .*label_dropout"):
        prior.null_labels(2)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\) \(n_classes=3\)"):
        prior(torch.zeros(1, 3, 5, dtype=torch.long), torch.tensor([3]))


def test_guidance_one_without_label_dropout_samples_todays_maps():
    prior = prior_with(0.0)
    assert sample_reference(prior, LABELS, SEEDS, guidance=1.0).tolist() == MAPS_BEFORE_GUIDANCE
    assert sample_fast(prior, LABELS, SEEDS, guidance=1.0).tolist() == MAPS_BEFORE_GUIDANCE
    low = sample_reference(prior, LABELS, SEEDS, temperature=0.7, top_k=4, guidance=1.0)
    assert low.tolist() == MAPS_BEFORE_GUIDANCE_T07_K4
    assert sample_fast(prior, LABELS, SEEDS, temperature=0.7, top_k=4).tolist() == MAPS_BEFORE_GUIDANCE_T07_K4


def test_label_dropout_zero_draws_nothing_in_training():
    prior = prior_with(0.0).train()
    state = torch.get_rng_state()
    training_map = prior.label_map(LABELS)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(training_map, prior.eval().label_map(LABELS))


def test_label_channels_widen_the_conditioning_map():
    prior = prior_with(0.0, label_channels=4)
    state = prior.state_dict()
    assert state["embedNet.blocks.3.weight"].shape == (4 * 3 * 5, 8)
    assert state["blocks.0.resblocks.0.condition.conv.weight_v"].shape[1] == 4
    assert prior.label_map(LABELS).shape == (4, 4, 3, 5)
    with pytest.raises(ValueError, match="label_channels"):
        prior_with(0.0, label_channels=0)


def test_label_dropout_adds_a_learned_null_label():
    prior = prior_with(0.25)
    assert prior.null_label == CLASSES and prior.n_labels == CLASSES + 1
    assert prior.state_dict()["embedNet.blocks.0.weight"].shape == (8, CLASSES + 1)
    assert prior.null_labels(3).tolist() == [CLASSES] * 3
    codes = torch.zeros(2, 3, 5, dtype=torch.long)
    with torch.no_grad():
        null_logits = prior(codes, prior.null_labels(2))
        assert not torch.allclose(null_logits, prior(codes, torch.tensor([0, 1])))


def test_label_dropout_replaces_labels_at_its_rate_in_training_only():
    prior = prior_with(0.25)
    labels = torch.arange(20000) % CLASSES
    torch.manual_seed(3)
    dropped = prior.drop_labels(labels)
    kept = dropped != CLASSES
    assert torch.equal(dropped[kept], labels[kept])
    assert abs((~kept).float().mean().item() - 0.25) < 0.015
    one = labels[:8]
    null_map = prior.eval().label_map(prior.null_labels(8))
    class_maps = prior.label_map(one)
    torch.manual_seed(4)
    training_maps = prior.train().label_map(one)
    torch.manual_seed(4)
    expected_null = prior.drop_labels(one) == CLASSES
    for row, is_null in enumerate(expected_null):
        assert torch.equal(training_maps[row], (null_map if is_null else class_maps)[row])
    assert torch.equal(prior.eval().label_map(one), class_maps)


def sample_fast(prior, labels, seeds, temperature=1.0, top_k=0, *, batch_size=None, guidance=1.0):
    return FastSampler(prior)(labels, seeds, temperature, top_k, batch_size=batch_size, guidance=guidance)


def with_strong_labels(prior: PixelSNAIL) -> PixelSNAIL:
    """A random prior whose labels matter: its label maps scaled up (a random one barely uses them)."""
    with torch.no_grad():
        prior.embedNet.blocks[3].weight.mul_(30.0)
        prior.embedNet.blocks[3].bias.mul_(30.0)
    return prior


def guided_map_is_consistent(prior: PixelSNAIL, maps: torch.Tensor, labels: torch.Tensor, seeds: list[int],
                             guidance: float, temperature: float, top_k: int) -> bool:
    """Each code of ``maps`` is the choice, with its clip's uniform, on null + s (cond - null) of the
    whole model run on the finished maps (its logits at a position see only earlier codes)."""
    with torch.no_grad():
        cond = prior(maps, labels).flatten(2).transpose(1, 2)
        null = prior(maps, prior.null_labels(len(labels))).flatten(2).transpose(1, 2)
    guided = null + guidance * (cond - null)
    uniforms = clip_uniforms(seeds, maps[0].numel())
    flat = maps.flatten(1)
    return all(torch.equal(choose_codes(guided[:, p], uniforms[:, p], temperature, top_k), flat[:, p])
               for p in range(flat.shape[1]))


@pytest.mark.parametrize("guidance,temperature,top_k,attention,label_channels", [
    (3.0, 1.0, 0, True, 1), (1.5, 0.8, 4, False, 1), (0.5, 1.0, 0, True, 1), (2.0, 1.0, 3, True, 4), (1.0, 1.0, 0, True, 4),
])
def test_fast_and_reference_sample_the_same_guided_maps(guidance, temperature, top_k, attention, label_channels):
    prior = with_strong_labels(prior_with(0.1, map_shape=(4, 6), seed=2, attention=attention, label_channels=label_channels))
    reference = sample_reference(prior, LABELS, SEEDS, temperature, top_k, guidance=guidance)
    fast = sample_fast(prior, LABELS, SEEDS, temperature, top_k, guidance=guidance, batch_size=3)
    assert torch.equal(fast, reference)
    assert guided_map_is_consistent(prior, reference, LABELS, SEEDS, guidance, temperature, top_k)
    if guidance != 1:
        assert not torch.equal(reference, sample_reference(prior, LABELS, SEEDS, temperature, top_k))


def test_guidance_zero_samples_the_null_label_and_one_the_class():
    prior = with_strong_labels(prior_with(0.1, seed=1))
    nulls = prior.null_labels(len(LABELS))
    assert torch.equal(sample_fast(prior, LABELS, SEEDS, guidance=0.0), sample_reference(prior, nulls, SEEDS))
    assert torch.equal(sample_fast(prior, LABELS, SEEDS, guidance=1.0), sample_reference(prior, LABELS, SEEDS))


def test_guidance_is_refused_without_a_null_label_and_when_negative():
    prior = prior_with(0.0)
    for sampler in (sample_reference, sample_fast):
        with pytest.raises(ValueError, match="no null label"):
            sampler(prior, LABELS, SEEDS, guidance=2.0)
    with pytest.raises(ValueError, match="guidance must be >= 0"):
        sample_fast(prior_with(0.1), LABELS, SEEDS, guidance=-1.0)


def test_a_prior_saved_before_label_dropout_existed_still_loads(tmp_path):
    config = load_config("quick", ["prior.label_dropout=0", "prior.label_channels=1"])
    torch.manual_seed(0)
    prior = build_prior(config.prior, (3, 5), VOCAB, CLASSES).eval()
    spec = prior_spec(prior, config.prior)
    del spec["prior"]["label_dropout"], spec["prior"]["label_channels"]  # as written before the keys existed
    path = tmp_path / "prior.pt"
    save_checkpoint(path, model_payload("prior", spec, prior))
    loaded, section = load_prior(path)
    assert (section.label_dropout, section.label_channels) == (0.0, 1) and loaded.null_label is None
    assert torch.equal(sample_fast(loaded, LABELS, SEEDS), sample_fast(prior, LABELS, SEEDS))
