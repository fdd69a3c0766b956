"""Per-clip seeds, the code choice and the reference sampler."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from foley.models.pixelsnail import PixelSNAIL
from foley.sample.reference import choose_codes, clip_seed, clip_uniforms, sample_reference


def tiny_prior(attention: bool = True) -> PixelSNAIL:
    torch.manual_seed(0)
    return PixelSNAIL((3, 4), 9, 3, channel=8, kernel_size=3, n_block=1, n_res_block=1, res_channel=6,
                      attention=attention, n_head=2, dropout=0.1, label_hidden=8)


def seeds_for(labels: list[int], indices: list[int], run_seed: int = 7) -> list[int]:
    return [clip_seed(run_seed, label, index) for label, index in zip(labels, indices)]


def test_clip_seeds_are_fixed_and_distinct():
    seeds = {clip_seed(run, label, index) for run in (0, 1) for label in range(7) for index in range(20)}
    assert len(seeds) == 2 * 7 * 20
    assert clip_seed(3, 2, 5) == clip_seed(3, 2, 5)
    assert all(0 <= seed < 2**64 for seed in seeds)
    with pytest.raises(ValueError, match="index"):
        clip_seed(0, 1, -1)


def test_clip_uniforms_do_not_depend_on_the_other_clips():
    together = clip_uniforms([11, 22, 33], 50)
    assert together.dtype == torch.float64 and together.shape == (3, 50)
    assert torch.equal(together[1], clip_uniforms([22], 50)[0])
    assert torch.equal(clip_uniforms([22], 20)[0], together[1, :20])
    assert ((together >= 0) & (together < 1)).all()


def inverse_cdf_by_hand(logits: np.ndarray, uniform: float, temperature: float, top_k: int) -> int:
    """One row, written independently: sort codes by decreasing logit, walk the cumulative sum."""
    order = sorted(range(len(logits)), key=lambda code: (-logits[code], code))
    if top_k:
        order = order[:top_k]
    scaled = np.array([logits[code] for code in order], dtype=np.float64) / temperature
    probabilities = np.exp(scaled - scaled.max())
    probabilities /= probabilities.sum()
    cumulative = 0.0
    for code, probability in zip(order, probabilities):
        cumulative += probability
        if uniform < cumulative:
            return code
    return order[-1]


@pytest.mark.parametrize("temperature,top_k", [(1.0, 0), (0.7, 0), (1.5, 3), (1.0, 1), (2.0, 20)])
def test_choose_codes_matches_a_hand_written_inverse_cdf(temperature, top_k):
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(200, 12, generator=generator, dtype=torch.float64) * 2
    logits[:10, 3] = logits[:10, 5] = logits[:10].max(dim=1).values  # ties among the most likely
    uniforms = torch.rand(200, generator=generator, dtype=torch.float64)
    chosen = choose_codes(logits, uniforms, temperature, top_k)
    expected = [inverse_cdf_by_hand(row.numpy(), u.item(), temperature, top_k) for row, u in zip(logits, uniforms)]
    assert chosen.tolist() == expected


def test_choose_codes_draws_each_code_with_its_probability():
    logits = torch.tensor([[0.5, -1.0, 2.0, 0.0, 1.0]], dtype=torch.float64)
    grid = (torch.arange(10_000, dtype=torch.float64) + 0.5) / 10_000
    chosen = choose_codes(logits.expand(len(grid), -1), grid, temperature=1.0, top_k=0)
    counts = torch.bincount(chosen, minlength=5).double()
    assert torch.allclose(counts / len(grid), torch.softmax(logits[0], 0), atol=2e-4)
    top2 = choose_codes(logits.expand(len(grid), -1), grid, temperature=1.0, top_k=2)
    assert set(top2.tolist()) == {2, 4}
    assert torch.bincount(top2, minlength=5)[2].item() / len(grid) == pytest.approx(1 / (1 + np.exp(-1.0)), abs=2e-4)


def test_low_temperature_and_top_1_choose_the_argmax():
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(500, 16, generator=generator)
    logits[:5] = 0.0  # all tied: argmax is the first code
    uniforms = torch.rand(500, generator=generator, dtype=torch.float64)
    assert torch.equal(choose_codes(logits, uniforms, 1.0, top_k=1), logits.argmax(dim=1))
    gaps = logits.topk(2, dim=1).values.diff(dim=1).abs().squeeze(1)
    clear = gaps > 1e-2
    cold = choose_codes(logits, uniforms, temperature=1e-4, top_k=0)
    assert torch.equal(cold[clear], logits.argmax(dim=1)[clear])


def test_choose_codes_rejects_bad_settings():
    logits, uniforms = torch.zeros(2, 4), torch.zeros(2)
    with pytest.raises(ValueError, match="temperature"):
        choose_codes(logits, uniforms, 0.0, 0)
    with pytest.raises(ValueError, match="top_k"):
        choose_codes(logits, uniforms, 1.0, -1)
    with pytest.raises(ValueError, match="uniforms"):
        choose_codes(logits, torch.zeros(3), 1.0, 0)


@pytest.mark.parametrize("attention", [True, False])
def test_same_seeds_give_the_same_maps_within_range(attention):
    prior = tiny_prior(attention)
    labels = torch.tensor([0, 2, 1])
    seeds = seeds_for([0, 2, 1], [0, 0, 0])
    first = sample_reference(prior, labels, seeds)
    assert first.shape == (3, 3, 4) and first.dtype == torch.long
    assert first.min() >= 0 and first.max() < prior.vocab_size
    assert torch.equal(sample_reference(prior, labels, seeds), first)
    assert not torch.equal(sample_reference(prior, labels, seeds_for([0, 2, 1], [1, 1, 1])), first)


def test_a_clip_does_not_depend_on_its_batch():
    prior = tiny_prior()
    labels = [2, 0, 1, 2]
    seeds = seeds_for(labels, [0, 0, 0, 1])
    batch = sample_reference(prior, torch.tensor(labels), seeds, temperature=1.3, top_k=5)
    for i, (label, seed) in enumerate(zip(labels, seeds)):
        alone = sample_reference(prior, torch.tensor([label]), [seed], temperature=1.3, top_k=5)
        assert torch.equal(alone[0], batch[i]), i


def greedy_by_hand(prior: PixelSNAIL, label: int) -> torch.Tensor:
    """Argmax decoding over the whole map, one position at a time."""
    height, width = prior.map_shape
    codes = torch.zeros(1, height, width, dtype=torch.long)
    with torch.no_grad():
        for row in range(height):
            for col in range(width):
                codes[0, row, col] = prior(codes, torch.tensor([label]))[0, :, row, col].argmax()
    return codes[0]


def test_top_1_sampling_is_greedy_decoding_whatever_the_seed():
    prior = tiny_prior().eval()
    sampled = sample_reference(prior, torch.tensor([1, 1]), [3, 4], top_k=1)
    greedy = greedy_by_hand(prior, 1)
    assert torch.equal(sampled[0], greedy) and torch.equal(sampled[1], greedy)


def test_sampler_restores_the_training_mode_and_checks_inputs():
    prior = tiny_prior().train()
    sample_reference(prior, torch.tensor([0]), [1])
    assert prior.training
    with pytest.raises(ValueError, match="labels .*n_classes=3"):
        sample_reference(prior, torch.tensor([3]), [1])
    with pytest.raises(ValueError, match="one seed per label"):
        sample_reference(prior, torch.tensor([0, 1]), [1])
