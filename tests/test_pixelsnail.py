"""The class-conditional PixelSNAIL prior: causality, conditioning, baseline compatibility, sizes."""

from __future__ import annotations

import math
import time
import zlib

import pytest
import torch

from foley.config import load_config
from foley.models.builders import build_prior, load_prior, prior_spec
from foley.models.layers import WeightNormConv2d, WeightNormLinear, fold_weight_norm
from foley.models.pixelsnail import PixelSNAIL, load_baseline_state_dict, loss_and_accuracy
from foley.util.checkpoint import model_payload, save_checkpoint
from foley.util.errors import CheckpointError

BASELINE_SIZE = dict(
    channel=256, kernel_size=5, n_block=4, n_res_block=4, res_channel=256,
    attention=True, n_head=8, dropout=0.1, label_hidden=2048,
)


def tiny_prior(map_shape=(4, 6), attention=True, vocab_size=7, n_classes=3, **sizes) -> PixelSNAIL:
    args = dict(channel=8, kernel_size=5, n_block=2, n_res_block=1, res_channel=6,
                attention=attention, n_head=2, dropout=0.1, label_hidden=8)
    args.update(sizes)
    torch.manual_seed(0)
    return PixelSNAIL(map_shape, vocab_size, n_classes, **args).double().eval()


def random_codes(prior: PixelSNAIL, batch: int, rows: int | None = None, seed: int = 1) -> torch.Tensor:
    height, width = prior.map_shape
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, prior.vocab_size, (batch, rows or height, width), generator=generator)


def raster(logits: torch.Tensor) -> torch.Tensor:
    """(B, V, h, W) -> (B, h * W, V): positions in raster order."""
    return logits.flatten(2).transpose(1, 2)


def change_from(codes: torch.Tensor, position: int, vocab_size: int) -> torch.Tensor:
    """Codes with every position >= ``position`` (raster order) set to a different code."""
    flat = codes.flatten(1).clone()
    flat[:, position:] = (flat[:, position:] + 1 + torch.arange(flat.shape[1] - position) % 3) % vocab_size
    return flat.view_as(codes)


@pytest.mark.parametrize("attention", [True, False])
@pytest.mark.parametrize("rows", [None, 2])
def test_logits_never_see_the_current_or_later_codes(attention, rows):
    prior = tiny_prior(attention=attention)
    codes = random_codes(prior, 2, rows)
    labels = torch.tensor([0, 2])
    with torch.no_grad():
        before = raster(prior(codes, labels))
        for position in range(before.shape[1]):
            after = raster(prior(change_from(codes, position, prior.vocab_size), labels))
            seen = slice(0, position + 1)
            assert torch.allclose(after[:, seen], before[:, seen], rtol=0, atol=1e-12), position
            if position + 1 < before.shape[1]:
                assert (after[:, position + 1 :] - before[:, position + 1 :]).abs().max() > 1e-6, position


def test_prefix_rows_give_the_full_maps_logits_on_those_rows():
    prior = tiny_prior()
    codes, labels = random_codes(prior, 2), torch.tensor([1, 0])
    with torch.no_grad():
        full = prior(codes, labels)
        for rows in range(1, prior.map_shape[0] + 1):
            assert torch.allclose(prior(codes[:, :rows], labels), full[:, :, :rows], rtol=0, atol=1e-12)


@pytest.mark.parametrize("attention", [True, False])
def test_logits_depend_on_the_code_just_left(attention):
    prior = tiny_prior(attention=attention)
    codes, labels = random_codes(prior, 1), torch.tensor([1])
    width = prior.map_shape[1]
    with torch.no_grad():
        before = raster(prior(codes, labels))
        for position in range(before.shape[1] - 1):
            if (position + 1) % width == 0:
                continue  # a row's first position does not see the previous row's last (as the baseline)
            changed = codes.flatten(1).clone()
            changed[:, position] = (changed[:, position] + 1) % prior.vocab_size
            after = raster(prior(changed.view_as(codes), labels))
            assert (after[:, position + 1] - before[:, position + 1]).abs().max() > 1e-6, position


def test_attention_carries_the_first_code_to_every_later_position():
    prior = tiny_prior(map_shape=(3, 8), n_block=1, n_res_block=0)
    codes, labels = random_codes(prior, 1), torch.tensor([2])
    changed = codes.clone()
    changed[0, 0, 0] = (codes[0, 0, 0] + 1) % prior.vocab_size
    with torch.no_grad():
        difference = (raster(prior(changed, labels)) - raster(prior(codes, labels))).abs().amax(dim=2)
    assert (difference[0, 2:] > 1e-6).all()


def test_every_position_depends_on_the_label():
    prior = tiny_prior()
    codes = random_codes(prior, 1).expand(3, -1, -1)
    with torch.no_grad():
        logits = raster(prior(codes, torch.tensor([0, 1, 2])))
    for a, b in [(0, 1), (1, 2), (0, 2)]:
        assert ((logits[a] - logits[b]).abs().amax(dim=1) > 1e-6).all()


def test_bad_inputs_raise_value_errors_naming_them():
    prior = tiny_prior(vocab_size=7, n_classes=3)
    codes = random_codes(prior, 2)
    with pytest.raises(ValueError, match="labels .*n_classes=3"):
        prior(codes, torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="codes .*vocab_size=7"):
        prior(codes.clone().fill_(7), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="codes must be"):
        prior(codes[:, :, :5], torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="labels must be"):
        prior(codes, torch.tensor([0]))
    with pytest.raises(ValueError, match="kernel_size"):
        tiny_prior(kernel_size=4)
    with pytest.raises(ValueError, match="n_head"):
        tiny_prior(n_head=3)


@pytest.mark.parametrize("attention", [True, False])
def test_folding_weight_norm_keeps_the_output(attention):
    prior = tiny_prior(attention=attention).float()
    codes, labels = random_codes(prior, 2), torch.tensor([2, 1])
    folded = fold_weight_norm(prior)
    assert not any("weight_v" in key for key in folded.state_dict())
    with torch.no_grad():
        assert torch.allclose(folded(codes, labels), prior(codes, labels), rtol=0, atol=1e-5)


def test_weight_norm_layers_match_torchs_weight_norm():
    torch.manual_seed(0)
    ours = WeightNormConv2d(3, 4, (2, 3))
    with torch.no_grad():
        ours.weight_g.mul_(torch.rand_like(ours.weight_g) + 0.5)
    reference = torch.nn.utils.parametrizations.weight_norm(torch.nn.Conv2d(3, 4, (2, 3)))
    with torch.no_grad():
        reference.parametrizations.weight.original0.copy_(ours.weight_g)
        reference.parametrizations.weight.original1.copy_(ours.weight_v)
        reference.bias.copy_(ours.bias)
        x = torch.randn(2, 3, 5, 6)
        assert torch.allclose(ours(x), reference(x), atol=1e-6)
    linear = WeightNormLinear(5, 3)
    assert linear.weight_g.shape == (3, 1)
    assert torch.allclose(linear.weight(), linear.weight_v, atol=1e-6)  # g starts at |v|


def _weight_norm_keys(prefix: str, bias: bool = True) -> list[str]:
    return [f"{prefix}.weight_g", f"{prefix}.weight_v"] + ([f"{prefix}.bias"] if bias else [])


def baseline_keys(n_block: int, n_res_block: int, attention: bool) -> set[str]:
    """The DCASE baseline PixelSNAIL's state-dict keys, without its unused cond_resnet."""
    keys = ["background", *_weight_norm_keys("horizontal.conv.conv"), *_weight_norm_keys("vertical.conv.conv")]
    for b in range(n_block):
        for r in range(n_res_block):
            res = f"blocks.{b}.resblocks.{r}"
            for conv in ("conv1", "conv2"):
                keys += _weight_norm_keys(f"{res}.{conv}.conv.conv")
            keys += _weight_norm_keys(f"{res}.condition.conv", bias=False)
        if attention:
            for part in ("key_resblock", "query_resblock", "out_resblock"):
                for conv in ("conv1", "conv2"):
                    keys += _weight_norm_keys(f"blocks.{b}.{part}.{conv}.conv")
            keys += _weight_norm_keys(f"blocks.{b}.out_resblock.aux_conv.conv")
            for name in ("query", "key", "value"):
                keys += _weight_norm_keys(f"blocks.{b}.causal_attention.{name}")
        else:
            keys += _weight_norm_keys(f"blocks.{b}.out.conv")
    keys += [f"embedNet.blocks.{i}.{kind}" for i in range(4) for kind in ("weight", "bias")]
    return set(keys + _weight_norm_keys("out.1.conv"))


CONDITIONING_RESNET = {  # the baseline builds it and never uses it
    "cond_resnet.blocks.0.conv.weight_v": torch.ones(4, 6, 3, 3),
    "cond_resnet.blocks.0.conv.weight_g": torch.ones(4, 1, 1, 1),
    "cond_resnet.blocks.0.conv.bias": torch.ones(4),
}


def patterned_baseline_state_dict(prior: PixelSNAIL, attention: bool) -> dict[str, torch.Tensor]:
    """The baseline's keys, each filled with a fixed sine pattern (masked kernel entries included)."""
    shapes = {key: value.shape for key, value in prior.state_dict().items()}
    state = {"background": prior.state_dict()["background"].clone()}
    keys = baseline_keys(len(prior.blocks), len(prior.blocks[0].resblocks), attention)
    for key in sorted(keys - {"background"}):
        phase = zlib.crc32(key.encode()) % 997 * 0.01
        pattern = torch.sin(torch.arange(shapes[key].numel(), dtype=torch.float64) * 0.7 + phase) * 0.5
        state[key] = pattern.float().view(shapes[key])
    return {**state, **CONDITIONING_RESNET}


@pytest.mark.parametrize("attention", [True, False])
def test_state_dict_keys_are_the_baselines(attention):
    prior = tiny_prior(attention=attention, n_block=2, n_res_block=3)
    assert set(prior.state_dict()) == baseline_keys(2, 3, attention)


# Logits of the baseline's own code (pixelsnail.py of the DCASE 2023 Task 7 baseline) on the
# patterned weights: map 20 x 86, vocab 6, 7 classes, channel 16, kernel 5, 1 block x 1 res block,
# res_channel 8, 8 heads, label_hidden 4; codes (arange * 7 + 3) % 6, labels [1, 5].
BASELINE_LOGITS = {
    True: ([0.30963, 0.390398, -0.044338, -1.409117, -0.934624, -0.21443],
           [0.403433, 0.333426, 0.064068, -1.140707, -0.947159, -0.237982], -5588.3359, 11053.248),
    False: ([0.197786, 0.038662, -0.736811, -0.390725, 0.000695, -0.259451],
            [0.200063, 0.038726, -0.732238, -0.388827, -0.002783, -0.25977], -3378.4355, 5346.5557),
}


@pytest.mark.parametrize("attention", [True, False])
def test_baseline_weights_give_the_baselines_logits(attention):
    prior = PixelSNAIL(
        (20, 86), 6, 7, channel=16, kernel_size=5, n_block=1, n_res_block=1, res_channel=8,
        attention=attention, n_head=8, dropout=0.1, label_hidden=4,
    ).eval()
    load_baseline_state_dict(prior, patterned_baseline_state_dict(prior, attention))
    codes = (torch.arange(2 * 20 * 86).view(2, 20, 86) * 7 + 3) % 6
    with torch.no_grad():
        logits = prior(codes, torch.tensor([1, 5]))
    first, second, total, magnitude = BASELINE_LOGITS[attention]
    assert torch.allclose(logits[0, :, 7, 40], torch.tensor(first), atol=1e-5)
    assert torch.allclose(logits[1, :, 19, 85], torch.tensor(second), atol=1e-5)
    assert logits.sum().item() == pytest.approx(total, rel=1e-4)
    assert logits.abs().sum().item() == pytest.approx(magnitude, rel=1e-4)


def test_load_baseline_state_dict_rejects_other_models():
    prior = tiny_prior(attention=True).float()
    state = patterned_baseline_state_dict(prior, attention=True)
    without_attention = tiny_prior(attention=False).float()
    with pytest.raises(CheckpointError, match="missing .* keys .*unexpected .*causal_attention"):
        load_baseline_state_dict(without_attention, state)
    wider = tiny_prior(map_shape=(4, 7)).float()
    with pytest.raises(CheckpointError, match=r"background has shape \(1, 2, 4, 6\), this model needs"):
        load_baseline_state_dict(wider, state)
    load_baseline_state_dict(prior, state)
    assert torch.equal(prior.out[1].conv.weight_v, state["out.1.conv.weight_v"])


@pytest.mark.parametrize("map_shape", [(20, 86), (40, 43), (80, 22)])
def test_output_shapes_for_the_paper_maps(map_shape):
    prior = tiny_prior(map_shape=map_shape, vocab_size=5, channel=4, res_channel=4, n_block=1, n_head=1).float()
    codes, labels = random_codes(prior, 1), torch.tensor([2])
    with torch.no_grad():
        assert prior(codes, labels).shape == (1, 5, *map_shape)
        assert prior(codes[:, :3], labels).shape == (1, 5, 3, map_shape[1])


def test_parameter_count_at_the_baselines_size():
    prior = PixelSNAIL((20, 86), 512, 7, **BASELINE_SIZE)
    # 103,316,216 in the baseline, less its unused 6,493,184-parameter cond_resnet
    assert sum(p.numel() for p in prior.parameters()) == 96_823_032


def test_a_prior_checkpoint_rebuilds_the_same_model(tmp_path):
    section = load_config("quick", ["prior.n_block=1", "prior.channel=16", "prior.res_channel=8", "prior.n_head=2",
                                    "prior.label_hidden=8", "prior.kernel_size=3", "prior.dropout=0.1"]).prior
    torch.manual_seed(0)
    prior = build_prior(section, (4, 6), 7, 3).eval()
    save_checkpoint(tmp_path / "prior.pt", model_payload("prior", prior_spec(prior, section), prior))
    rebuilt, rebuilt_section = load_prior(tmp_path / "prior.pt")
    assert rebuilt_section == section and not rebuilt.training
    assert (rebuilt.map_shape, rebuilt.vocab_size, rebuilt.n_classes) == ((4, 6), 7, 3)
    codes, labels = torch.randint(0, 7, (2, 4, 6)), torch.tensor([0, 2])
    torch.testing.assert_close(rebuilt(codes, labels), prior(codes, labels), rtol=0, atol=0)


GRADIENT_FREE = ("condition.conv.weight_v", "causal_attention.key.bias")


def one_training_step(prior: PixelSNAIL, label: int) -> dict[str, float]:
    """Forward, backward and an SGD step on one random map; checks every parameter gets a gradient.

    Two kinds have none in exact arithmetic (in the baseline too), only round-off: the label
    conditions' ``weight_v`` (one input channel: g * v / |v| = g * sign(v)) and the attention key
    bias (it adds the same score to every key of a query, which softmax ignores).
    """
    optimizer = torch.optim.SGD(prior.parameters(), lr=1e-3)
    codes = torch.randint(0, prior.vocab_size, (1, *prior.map_shape))
    output_weight = prior.out[1].conv.weight_v.detach().clone()
    metrics = loss_and_accuracy(prior.train(), codes, torch.tensor([label]))
    metrics["loss"].backward()
    optimizer.step()
    assert torch.isfinite(metrics["loss"]) and 0.0 <= metrics["accuracy"].item() <= 1.0
    for name, parameter in prior.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
        if not name.endswith(GRADIENT_FREE):
            assert parameter.grad.abs().max() > 1e-12, f"{name} gets no gradient"
    assert not torch.equal(prior.out[1].conv.weight_v, output_weight)
    return {key: value.item() for key, value in metrics.items()}


@pytest.mark.parametrize("attention", [True, False])
def test_one_training_step_reaches_every_parameter(attention):
    prior = tiny_prior(attention=attention).float()
    metrics = one_training_step(prior, label=1)
    assert abs(metrics["loss"] - math.log(prior.vocab_size)) < 1.0


# 20-26 CPU-seconds per map (about 10-13 s on an idle 2-core CPU); 29-50 s wall measured on a
# shared 2-core machine (load 4-5), hence slow.
@pytest.mark.slow
@pytest.mark.parametrize("map_shape", [(20, 86), (40, 43), (80, 22)], ids=["20x86", "40x43", "80x22"])
def test_one_training_step_at_the_baselines_size(map_shape):
    torch.manual_seed(0)
    prior = PixelSNAIL(map_shape, 512, 7, **BASELINE_SIZE)
    start = time.perf_counter()
    metrics = one_training_step(prior, label=3)
    print(f"PixelSNAIL training step {map_shape[0]}x{map_shape[1]}, batch 1: {time.perf_counter() - start:.1f} s")
    assert abs(metrics["loss"] - math.log(512)) < 2.0
