"""EnCodec's loss balancer, checked against its definition written out here from the description."""

import copy

import pytest
import torch
import torch.nn.functional as F

from foley.config import load_config
from foley.models.autoencoder import Autoencoder
from foley.quantize.ema import ResidualQuantizer
from foley.train.balancer import LossBalancer
from foley.train.batches import BatchShare
from foley.train.schedule import lr_factor
from foley.train.tasks import AutoencoderTask


def clip_norm_mean(gradient):
    """Each clip's L2 norm of a gradient (B, ...), averaged over the clips."""
    return float(gradient.flatten(1).norm(dim=1).mean())


def test_opposite_unit_terms_cancel_as_in_encodecs_own_check():
    # EnCodec's sanity check: y = 0, loss1 = L1(y, 1), loss2 = 100 L1(y, -1), equal weights.
    y = torch.zeros(1, 1, requires_grad=True)  # one clip of one element
    losses = {"a": F.l1_loss(y, torch.ones(1, 1)), "b": 100 * F.l1_loss(y, -torch.ones(1, 1))}
    gradient, _ = LossBalancer({"a": 1.0, "b": 1.0}).output_gradient(losses, y)
    unbalanced = torch.autograd.grad(losses["a"] + losses["b"], y)[0]
    assert float(unbalanced) == pytest.approx(99.0) and float(gradient) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("weights", [{"low": 3.0, "high": 1.0}, {"low": 1.0, "high": 1.0}, {"low": 0.2, "high": 0.6}])
def test_effective_gradient_shares_match_the_configured_shares_while_training(weights):
    """A toy decoder whose two output bands have errors 1000x apart: with the balancer (no EMA, so
    each step uses its own norms) each band's part of the gradient at the output has the configured
    share of the total norm R at every step, while plain losses would leave the loud band ~all of it."""
    torch.manual_seed(0)
    decoder = torch.nn.Linear(6, 8)
    optimizer = torch.optim.Adam(decoder.parameters(), lr=1e-2)
    x = torch.randn(16, 6)
    target = torch.cat([torch.randn(16, 4) * 1000, torch.randn(16, 4)], 1)
    balancer = LossBalancer(weights, total_norm=2.0, decay=0.0)
    shares = {name: w / sum(weights.values()) for name, w in weights.items()}
    for _ in range(20):
        y = decoder(x)
        probe = y.detach().requires_grad_()
        losses = {"low": F.mse_loss(probe[:, :4], target[:, :4]), "high": F.mse_loss(probe[:, 4:], target[:, 4:])}
        gradient, scales = balancer.output_gradient(losses, probe, BatchShare(0, 16, 16))
        for name, loss in losses.items():
            part = scales[name] * torch.autograd.grad(loss, probe, retain_graph=True)[0]
            assert clip_norm_mean(part) == pytest.approx(2.0 * shares[name], rel=1e-6)
        optimizer.zero_grad()
        y.backward(gradient)
        optimizer.step()
    raw = [clip_norm_mean(torch.autograd.grad(loss, probe, retain_graph=True)[0]) for loss in losses.values()]
    assert raw[0] > 100 * raw[1]  # unbalanced, the loud band would own the gradient


def test_ema_of_norms_is_bias_corrected_and_gives_the_scales():
    weights = {"a": 3.0, "b": 1.0}
    balancer = LossBalancer(weights, total_norm=1.5, decay=0.9)
    history = {"a": [2.0, 4.0, 1.0], "b": [0.5, 0.25, 0.125]}
    for t in range(3):
        scales = balancer.update({name: values[t] for name, values in history.items()})
        for name, values in history.items():
            decays = [0.9 ** (t - i) for i in range(t + 1)]
            average = sum(d * v for d, v in zip(decays, values)) / sum(decays)
            assert scales[name] == pytest.approx(weights[name] / 4.0 * 1.5 / average, rel=1e-9)
    assert LossBalancer({"a": 1.0}, decay=0.999).update({"a": 5.0})["a"] == pytest.approx(1 / 5.0)  # first step: raw norm


def test_constant_norms_give_exact_shares_through_the_ema():
    """L1 terms have a gradient of constant per-clip norm: with any EMA decay the shares are exact."""
    torch.manual_seed(1)
    balancer = LossBalancer({"a": 1.0, "b": 3.0}, decay=0.99)
    for _ in range(5):
        y = torch.randn(4, 10, requires_grad=True)
        losses = {"a": 50 * F.l1_loss(y[:, :5], torch.zeros(4, 5)), "b": 0.01 * F.l1_loss(y[:, 5:], torch.zeros(4, 5))}
        gradient, _ = balancer.output_gradient(losses, y)
        assert clip_norm_mean(gradient[:, :5]) == pytest.approx(0.25, rel=1e-5)
        assert clip_norm_mean(gradient[:, 5:]) == pytest.approx(0.75, rel=1e-5)


def test_state_round_trips_and_bad_weights_are_refused():
    first = LossBalancer({"a": 1.0})
    first.update({"a": 2.0})
    second = LossBalancer({"a": 1.0})
    second.load_state_dict(first.state_dict())
    assert second.update({"a": 3.0}) == first.update({"a": 3.0})
    with pytest.raises(ValueError, match="positive sum"):
        LossBalancer({"a": 0.0})


def test_autoencoder_task_backpropagates_the_balanced_output_gradient_plus_the_plain_commitment():
    loss = load_config("quick", ["autoencoder.loss.balancer=true", "autoencoder.loss.balancer_total_norm=3.0"]).autoencoder.loss
    torch.manual_seed(0)
    model = Autoencoder((16, 32), [(2, 2)], ResidualQuantizer(4, 1, 8), channel=8, n_res_block=1, n_res_channel=4)
    reference = copy.deepcopy(model).train()
    task = AutoencoderTask(model, 0.25, 0.0, torch.device("cpu"), loss=loss)
    mel = torch.randn(3, 16, 32)
    logged = task.train_step((mel,), BatchShare(0, 3, 3))
    recon, result = reference(mel)
    mse = F.mse_loss(recon, mel)
    output_gradient = torch.autograd.grad(mse, recon, retain_graph=True)[0]
    scale = 3.0 / clip_norm_mean(output_gradient)  # first step: the EMA is this step's norm
    assert logged["balancer/scale_mse"] == pytest.approx(scale, rel=1e-5)
    torch.autograd.backward([recon, 0.25 * result.commitment], [scale * output_gradient, torch.ones(())])
    for (name, got), (_, want) in zip(model.named_parameters(), reference.named_parameters()):
        torch.testing.assert_close(got.grad, want.grad, rtol=1e-4, atol=1e-7, msg=name)


def test_the_balanced_step_follows_the_learning_rate_schedule():
    loss = load_config("quick", ["autoencoder.loss.balancer=true"]).autoencoder.loss
    torch.manual_seed(0)
    model = Autoencoder((16, 32), [(2, 2)], ResidualQuantizer(4, 1, 8), channel=8, n_res_block=1, n_res_channel=4)
    factor = lr_factor("cosine", 4, 2)
    task = AutoencoderTask(model, 0.25, 0.1, torch.device("cpu"), loss=loss, lr_factor=factor)
    rates = []
    for _ in range(4):
        rates.append(task.optimizer.param_groups[0]["lr"])
        task.train_step((torch.randn(3, 16, 32),), BatchShare(0, 3, 3))
    assert rates == pytest.approx([0.1 * factor(step) for step in range(4)])
