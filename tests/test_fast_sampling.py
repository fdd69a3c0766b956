"""The fast sampler against the reference: logits at every step, sampled maps, batching, bf16, errors."""

from __future__ import annotations

import pytest
import torch

from foley.models.incremental_pixelsnail import IncrementalPixelSNAIL
from foley.models.pixelsnail import PixelSNAIL
from foley.quantize.stacking import stack_levels
from foley.sample.fast import FastSampler
from foley.sample.reference import choose_codes, clip_seed, clip_uniforms, sample_reference

VOCAB, CLASSES = 9, 3


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def sample_fast(prior, labels, seeds, temperature=1.0, top_k=0, *, amp=False, batch_size=None):
    """One call of a FastSampler built for it (what generate does once per run)."""
    return FastSampler(prior, amp)(labels, seeds, temperature, top_k, batch_size=batch_size)


def small_prior(map_shape: tuple[int, int], attention: bool = True, seed: int = 0) -> PixelSNAIL:
    torch.manual_seed(seed)
    return PixelSNAIL(map_shape, VOCAB, CLASSES, channel=8, kernel_size=5, n_block=2, n_res_block=1,
                      res_channel=6, attention=attention, n_head=2, dropout=0.1, label_hidden=8).eval()


def random_maps(shape: tuple[int, ...], seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, shape, generator=torch.Generator().manual_seed(seed))


def teacher_forced_logits(prior: PixelSNAIL, maps: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B, H * W, V): the incremental model's logits at each step, fed the codes of ``maps``."""
    model = IncrementalPixelSNAIL(prior)
    model.begin(labels)
    steps = []
    for code in maps.flatten(1).t():
        steps.append(model.next_logits())
        model.place(code)
    assert torch.equal(model.codes(), maps)
    return torch.stack(steps, dim=1)


def full_logits(prior: PixelSNAIL, maps: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B, H * W, V): the whole model on the finished maps, positions in raster order."""
    with torch.no_grad():
        return prior(maps, labels).flatten(2).transpose(1, 2)


def reference_step_logits(prior: PixelSNAIL, maps: torch.Tensor, labels: torch.Tensor, position: int) -> torch.Tensor:
    """What the reference sampler computes at ``position``: the model on the rows so far, later codes 0."""
    width = maps.shape[2]
    row, col = divmod(position, width)
    seen = maps.flatten(1).clone()
    seen[:, position:] = 0
    with torch.no_grad():
        return prior(seen.view_as(maps)[:, : row + 1], labels)[:, :, row, col]


MAPS = {
    "20x86": lambda: random_maps((2, 20, 86)),
    "40x43": lambda: random_maps((2, 40, 43)),
    "20x86 stacked freq": lambda: stack_levels(random_maps((2, 4, 5, 86)), "freq"),
    "20x86 stacked interleave": lambda: stack_levels(random_maps((2, 4, 5, 86)), "interleave"),
    "40x43 stacked freq": lambda: stack_levels(random_maps((2, 4, 10, 43)), "freq"),
    "40x43 stacked interleave": lambda: stack_levels(random_maps((2, 4, 10, 43)), "interleave"),
}
CASES = [("20x86", True), ("20x86", False), ("40x43", True), ("40x43", False),
         ("20x86 stacked freq", True), ("20x86 stacked interleave", False),
         ("40x43 stacked freq", False), ("40x43 stacked interleave", True)]


@pytest.mark.parametrize("name,attention", CASES)
def test_every_steps_logits_equal_the_reference(name, attention):
    maps = MAPS[name]()
    prior = small_prior(tuple(maps.shape[1:]), attention)
    labels = torch.tensor([2, 0])
    fast = teacher_forced_logits(prior, maps, labels)
    assert (fast - full_logits(prior, maps, labels)).abs().max() < 1e-4
    positions = maps[0].numel()
    width = maps.shape[2]
    for position in (0, 1, width - 1, width, width + 3, positions // 2, positions - width, positions - 1):
        reference = reference_step_logits(prior, maps, labels, position)
        assert (fast[:, position] - reference).abs().max() < 1e-4, position


@pytest.mark.parametrize("map_shape,attention", [((20, 86), True), ((40, 43), False)])
def test_sampled_maps_are_the_ones_the_reference_would_choose(map_shape, attention):
    """The reference picks code p from its logits at p, which are the whole model's on the finished
    map; so a map is the reference's iff every code is choose_codes of those logits and its uniform."""
    prior = small_prior(map_shape, attention)
    labels, seeds = torch.tensor([1, 2, 0]), [clip_seed(5, c, 0) for c in (1, 2, 0)]
    maps = sample_fast(prior, labels, seeds, temperature=0.8, top_k=5)
    logits = full_logits(prior, maps, labels)
    uniforms = clip_uniforms(seeds, maps[0].numel())
    for position in range(maps[0].numel()):
        chosen = choose_codes(logits[:, position], uniforms[:, position], 0.8, 5)
        assert torch.equal(chosen, maps.flatten(1)[:, position]), position


@pytest.mark.parametrize("map_shape,attention,temperature,top_k", [
    ((10, 22), True, 1.0, 0), ((10, 22), False, 1.3, 4), ((6, 12), True, 0.7, 1), ((40, 43), False, 1.0, 0),
])
def test_sampled_maps_are_identical_to_the_reference(map_shape, attention, temperature, top_k):
    prior = small_prior(map_shape, attention, seed=3)
    labels = torch.tensor([0, 1, 2, 1])
    seeds = [clip_seed(11, int(c), i) for i, c in enumerate(labels)]
    expected = sample_reference(prior, labels, seeds, temperature, top_k)
    assert torch.equal(sample_fast(prior, labels, seeds, temperature, top_k), expected)


def test_maps_do_not_depend_on_batch_size_or_batch_mates():
    prior = small_prior((6, 9))
    labels = torch.tensor([0, 2, 1, 2, 0])
    seeds = [clip_seed(2, int(c), i) for i, c in enumerate(labels)]
    sampler = FastSampler(prior)
    together = sampler(labels, seeds)
    assert torch.equal(sampler(labels, seeds, batch_size=2), together)
    assert torch.equal(sampler(labels[3:4], seeds[3:4])[0], together[3])
    assert sampler(labels[:0], []).shape == (0, 6, 9)


def test_bf16_autocast_stays_close_with_bf16_caches():
    maps = random_maps((2, 6, 9))
    prior = small_prior((6, 9))
    labels = torch.tensor([1, 0])
    exact = full_logits(prior, maps, labels)
    model = IncrementalPixelSNAIL(prior, torch.bfloat16)
    fp32 = IncrementalPixelSNAIL(prior)
    fp32.begin(labels)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model.begin(labels)
        steps = []
        for code in maps.flatten(1).t():
            steps.append(model.next_logits().float())
            model.place(code)
    error = (torch.stack(steps, 1) - exact).abs().max()
    assert 0 < error < 0.05
    assert model.blocks[0].resblocks[0].conv1.inputs.dtype == torch.bfloat16
    assert model.blocks[0].attention.keys.dtype == torch.bfloat16
    assert model.state_bytes() < 0.65 * fp32.state_bytes()  # the code map (int64) stays as it is
    sampled = sample_fast(prior, labels, [1, 2], amp=True)
    assert sampled.shape == (2, 6, 9) and 0 <= sampled.min() and sampled.max() < VOCAB


def test_the_prior_is_left_as_it_was():
    prior = small_prior((4, 6)).train()
    keys = set(prior.state_dict())
    before = {k: v.clone() for k, v in prior.state_dict().items()}
    sample_fast(prior, torch.tensor([0]), [1])
    assert prior.training and set(prior.state_dict()) == keys
    assert all(torch.equal(before[k], v) for k, v in prior.state_dict().items())


def test_bad_calls_are_refused_with_a_reason():
    prior = small_prior((4, 6))
    with pytest.raises(ValueError, match="one seed per label"):
        sample_fast(prior, torch.tensor([0, 1]), [1])
    with pytest.raises(ValueError, match="labels .*n_classes=3"):
        sample_fast(prior, torch.tensor([3]), [1])
    with pytest.raises(ValueError, match="batch_size"):
        sample_fast(prior, torch.tensor([0]), [1], batch_size=0)
    with pytest.raises(ValueError, match="temperature"):
        sample_fast(prior, torch.tensor([0]), [1], temperature=0.0)
    model = IncrementalPixelSNAIL(prior)
    model.begin(torch.tensor([0]))
    with pytest.raises(RuntimeError, match="before place"):
        model.place(torch.tensor([0]))
    model.next_logits()
    with pytest.raises(RuntimeError, match="place\\(\\) the codes of position 0"):
        model.next_logits()
    for _ in range(24):
        model.place(torch.tensor([1]))
        if model.position < 24:
            model.next_logits()
    with pytest.raises(RuntimeError, match="all 24 positions"):
        model.next_logits()
