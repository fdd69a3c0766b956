"""The fast PixelSNAIL training path (foley.train.fast) computes the reference model's function.

Proof in three parts:
- float64: the fast logits, loss and every parameter's gradient equal the reference's to 1e-10
  (the same function, both ways of running causal convolutions: Winograd and direct);
- float32 with dropout 0: loss and gradients within 1e-5 of the reference's (per parameter tensor,
  relative in the L2 norm; the Winograd products round differently, a few 1e-6 per layer);
- with dropout: the same distribution. The keep masks keep each value with probability 1 - p
  (rate within 5 standard errors on 10^6 draws, kept values scaled by 1 / (1 - p)); attention
  outputs over 3,000 seeds have the reference's mean and variance per output (within 5 standard
  errors); the training loss over 400 seeds has the reference's mean.
"""

from __future__ import annotations

import math

import pytest
import torch

from foley.models.pixelsnail import CausalAttention, PixelSNAIL, loss_and_accuracy
from foley.train.fast import attention as fast_attention
from foley.train.fast.prior import attention, fast_logits, fast_loss_and_accuracy

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# (map, kernel, vocabulary): tiny maps, an RVQ-shaped one (4 levels of 2 x 5 stacked), a 3 x 3 kernel
SHAPES = [((4, 6), 5, 7), ((8, 5), 5, 16), ((5, 9), 3, 7)]
SHAPE_IDS = ["4x6", "rvq-8x5", "5x9-k3"]
ROUNDOFF_ONLY = ("condition.conv.weight_v", "causal_attention.key.bias")  # zero gradient in exact arithmetic


def prior(map_shape, kernel_size, vocab_size, attention=True, dropout=0.0, dtype=torch.float64, seed=0,
          **labels) -> PixelSNAIL:
    torch.manual_seed(seed)
    model = PixelSNAIL(map_shape, vocab_size, 3, channel=16, kernel_size=kernel_size, n_block=2, n_res_block=2,
                       res_channel=12, attention=attention, n_head=2, dropout=dropout, label_hidden=8, **labels)
    return model.to(dtype).train()


def batch(model: PixelSNAIL, size: int = 3, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, model.vocab_size, (size, *model.map_shape), generator=generator)
    return codes, torch.arange(size) % model.n_classes


def loss_and_gradients(model, step, codes, labels) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    torch.manual_seed(7)  # the same label-dropout draws for both paths
    loss = step(model, codes, labels)["loss"]
    loss.backward()
    return loss.detach(), {name: p.grad.clone() for name, p in model.named_parameters()}


def gradient_differences(fast: dict, reference: dict) -> dict[str, float]:
    """Per tensor |g_fast - g_ref| / |g_ref| (L2); tensors whose exact gradient is zero are
    measured against 1e-3 of the largest gradient norm instead (their gradients are round-off)."""
    largest = max(g.norm() for g in reference.values())
    return {name: float((fast[name] - g).norm() / (largest * 1e-3 if name.endswith(ROUNDOFF_ONLY) else g.norm()))
            for name, g in reference.items()}


@pytest.mark.parametrize("conv", ["winograd", "direct"])
@pytest.mark.parametrize("attention", [True, False])
@pytest.mark.parametrize("map_shape,kernel,vocab", SHAPES, ids=SHAPE_IDS)
def test_float64_loss_and_every_gradient_equal_the_reference(map_shape, kernel, vocab, attention, conv):
    model = prior(map_shape, kernel, vocab, attention)
    codes, labels = batch(model)
    reference_loss, reference = loss_and_gradients(model, loss_and_accuracy, codes, labels)
    fast_loss, fast = loss_and_gradients(model, lambda *a: fast_loss_and_accuracy(*a, conv=conv), codes, labels)
    assert fast_loss.item() == pytest.approx(reference_loss.item(), rel=1e-12)
    differences = gradient_differences(fast, reference)
    assert max(differences.values()) < 1e-10, max(differences.items(), key=lambda item: item[1])


def test_float64_with_label_dropout_and_a_multi_channel_label_map():
    """Classifier-free guidance training: labels dropped to the null label (same draws), 2 label channels."""
    model = prior((4, 6), 5, 7, label_dropout=0.5, label_channels=2)
    codes, labels = batch(model, size=6)
    reference_loss, reference = loss_and_gradients(model, loss_and_accuracy, codes, labels)
    fast_loss, fast = loss_and_gradients(model, fast_loss_and_accuracy, codes, labels)
    assert fast_loss.item() == pytest.approx(reference_loss.item(), rel=1e-12)
    differences = gradient_differences(fast, reference)
    assert max(differences.values()) < 1e-10, max(differences.items(), key=lambda item: item[1])
    assert reference["embedNet.blocks.0.weight"][:, model.null_label].abs().sum() > 0  # the null label trained


@pytest.mark.device
@pytest.mark.parametrize("attention", [True, False])
@pytest.mark.parametrize("map_shape,kernel,vocab", SHAPES, ids=SHAPE_IDS)
def test_float32_loss_and_gradients_within_1e5_of_the_reference(map_shape, kernel, vocab, attention, test_device):
    """On the CPU the fast path's causal convolutions are Winograd's, on a GPU cuDNN's (TF32 off)."""
    model = prior(map_shape, kernel, vocab, attention, dtype=torch.float32).to(test_device)
    codes, labels = (t.to(test_device) for t in batch(model))
    reference_loss, reference = loss_and_gradients(model, loss_and_accuracy, codes, labels)
    fast_loss, fast = loss_and_gradients(model, fast_loss_and_accuracy, codes, labels)
    assert fast_loss.item() == pytest.approx(reference_loss.item(), rel=1e-5)
    differences = gradient_differences(fast, reference)
    assert max(differences.values()) < 1e-5, max(differences.items(), key=lambda item: item[1])


def test_eval_logits_and_prefix_rows_equal_the_reference():
    """Eval mode (dropout off, fused attention) and a map of fewer rows than the model's."""
    model = prior((6, 5), 5, 9, dropout=0.3).eval()
    codes, labels = batch(model)
    with torch.no_grad():
        for rows in (6, 2):
            reference = model(codes[:, :rows], labels).permute(0, 2, 3, 1)
            torch.testing.assert_close(fast_logits(model, codes[:, :rows], labels), reference, rtol=1e-10, atol=1e-12)


def test_every_parameter_gets_a_gradient_through_the_fast_path():
    model = prior((4, 6), 5, 7, dropout=0.1, dtype=torch.float32)
    _, gradients = loss_and_gradients(model, fast_loss_and_accuracy, *batch(model))
    for name, gradient in gradients.items():
        assert torch.isfinite(gradient).all(), name
        if not name.endswith(ROUNDOFF_ONLY):
            assert gradient.abs().max() > 1e-12, f"{name} gets no gradient"


def test_bad_inputs_and_backends_are_refused():
    model = prior((4, 6), 5, 7)
    codes, labels = batch(model)
    with pytest.raises(ValueError, match="conv 'fft' is not one of auto, winograd, direct"):
        fast_logits(model, codes, labels, conv="fft")
    with pytest.raises(ValueError, match="codes must lie in"):
        fast_logits(model, codes + 7, labels)


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_keep_masks_keep_each_value_with_probability_1_minus_p(p):
    torch.manual_seed(0)
    draws = 1_000_000
    rate = fast_attention.keep_mask(torch.Size([draws]), p).double().mean().item()
    assert abs(rate - (1 - p)) < 5 * math.sqrt(p * (1 - p) / draws)
    x = torch.rand(1000) + 1.0
    dropped = fast_attention.dropout(x, p, training=True)
    kept = dropped != 0
    torch.testing.assert_close(dropped[kept], x[kept] / (1 - p))
    assert torch.equal(fast_attention.dropout(x, p, training=False), x)


def test_keep_masks_follow_torchs_seed():
    """The masks come from a generator seeded by torch's: torch.manual_seed (and a checkpoint's RNG
    state) decides them."""
    masks = []
    for seed in (3, 3, 4):
        torch.manual_seed(seed)
        masks.append(fast_attention.keep_mask(torch.Size([1000]), 0.5))
    assert torch.equal(masks[0], masks[1]) and not torch.equal(masks[0], masks[2])


def reference_attention(query, key, p):
    layer = CausalAttention(3, 3, 4, n_head=2, dropout=p).double().train()
    with torch.no_grad():
        for projection in (layer.query, layer.key, layer.value):
            projection.weight_v.copy_(torch.eye(4, 3, dtype=torch.float64) + 0.1)
            projection.bias.zero_()
    return layer, lambda: layer(query, key)


def test_attention_dropout_has_the_references_mean_and_variance():
    """Positive values, so each output's mean stands well above its spread (a few % bias shows)."""
    p, seeds = 0.3, 3000
    generator = torch.Generator().manual_seed(3)
    query = torch.randn(1, 3, 2, 4, dtype=torch.float64, generator=generator)
    key = torch.rand(1, 3, 2, 4, dtype=torch.float64, generator=generator) + 1.0
    layer, reference = reference_attention(query, key, p)
    with torch.no_grad():
        torch.manual_seed(10)
        reference_runs = torch.stack([reference() for _ in range(seeds)])
        torch.manual_seed(11)
        channels_last = query.permute(0, 2, 3, 1), key.permute(0, 2, 3, 1)
        fast_runs = torch.stack([attention(layer, *channels_last, training=True).permute(0, 3, 1, 2) for _ in range(seeds)])
        exact = layer.eval()(query, key)
    later = exact.flatten(2)[..., 1:]  # positions with earlier ones; the first outputs 0 in every run
    assert (later > 0.5).all()
    assert (fast_runs.flatten(3)[..., 0] == 0).all() and (reference_runs.flatten(3)[..., 0] == 0).all()
    for runs in (reference_runs, fast_runs):
        runs = runs.flatten(3)[..., 1:]
        assert ((runs.mean(0) - later).abs() <= 5 * runs.std(0) / math.sqrt(seeds)).all()
    reference_var, fast_var = (runs.flatten(3)[..., 1:].var(0) for runs in (reference_runs, fast_runs))
    assert ((fast_var - reference_var).abs() <= 5 * (reference_var + fast_var) * math.sqrt(2 / seeds)).all()


def test_training_loss_with_dropout_has_the_references_mean_and_spread():
    """E[loss] and its spread over the dropout masks, on a one-block prior: dropout left out, or
    drawn at another rate, anywhere in the network shifts them."""
    torch.manual_seed(0)
    model = PixelSNAIL((3, 4), 5, 2, channel=8, kernel_size=3, n_block=1, n_res_block=1, res_channel=8,
                       attention=True, n_head=2, dropout=0.5, label_hidden=4).double().train()
    codes, labels = batch(model, size=2)
    seeds = 500
    with torch.no_grad():
        torch.manual_seed(20)
        reference = torch.stack([loss_and_accuracy(model, codes, labels)["loss"] for _ in range(seeds)])
        torch.manual_seed(21)
        fast = torch.stack([fast_loss_and_accuracy(model, codes, labels)["loss"] for _ in range(seeds)])
    assert abs(fast.mean() - reference.mean()) < 5 * math.sqrt((reference.var() + fast.var()) / seeds)
    assert abs(math.log(fast.var() / reference.var())) < 5 * math.sqrt(4 / seeds)
