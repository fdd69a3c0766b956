"""Config `amp` on the CPU: bf16 autocast in both trainers where the CPU has bf16 instructions,
float32 with one warning where it has not; sampling stays float32. bf16 keeps 8 significant bits (a relative rounding of
2^-9, about 2e-3, per value), so losses and gradients are compared to float32's within 2e-2."""

from __future__ import annotations

import copy
import logging

import pytest
import torch
from torch import nn

from foley.config import load_config
from foley.models.builders import build_autoencoder
from foley.models.pixelsnail import PixelSNAIL
from foley.sample.fast import FastSampler
from foley.train.batches import BatchShare
from foley.train.fast import prior as fast_prior
from foley.train.fast.attention import strictly_causal_attention
from foley.train.fast.winograd import winograd_conv2d
from foley.train.tasks import AdamTask, AutoencoderTask, PriorTask
from foley.util import device as device_module
from foley.util.device import amp_enabled
from foley.util.errors import ConfigError

CPU = torch.device("cpu")
BF16_TOLERANCE = 2e-2  # relative, loss and gradients
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def bf16_cpu(monkeypatch):
    """A CPU with bf16 instructions, whatever this one has (without them torch emulates bf16: the
    same numbers, slower)."""
    monkeypatch.setattr(device_module, "cpu_has_bf16", lambda: True)


@pytest.fixture
def float32_cpu(monkeypatch):
    """A CPU without bf16 instructions, whose warning has not been given yet in this process."""
    monkeypatch.setattr(device_module, "cpu_has_bf16", lambda: False)
    device_module._warn_float32.cache_clear()
    yield
    device_module._warn_float32.cache_clear()


def tiny_autoencoder(seed: int = 0) -> nn.Module:
    section = load_config("quick", ["autoencoder.channel=8", "autoencoder.n_res_channel=4", "autoencoder.embed_dim=4",
                                    "autoencoder.quantizer.codebook_size=8", "autoencoder.strides=[[2, 2]]"]).autoencoder
    torch.manual_seed(seed)
    return build_autoencoder(section, (16, 32))


def tiny_prior() -> PixelSNAIL:
    torch.manual_seed(0)
    return PixelSNAIL((4, 6), 9, 3, channel=16, kernel_size=5, n_block=2, n_res_block=1, res_channel=12,
                      attention=True, n_head=2, dropout=0.0, label_hidden=8)


def smooth_mels(count: int, seed: int = 2) -> torch.Tensor:
    """Log-mel-like maps a tiny autoencoder can learn: a few smooth random patterns per clip."""
    generator = torch.Generator().manual_seed(seed)
    bands, frames = torch.linspace(0, 1, 16).view(16, 1), torch.linspace(0, 1, 32).view(1, 32)
    weights = torch.randn(count, 3, 2, generator=generator)
    patterns = [torch.sin(3 * bands * (k + 1)) * torch.cos(2 * frames * (k + 1)) for k in range(3)]
    return sum(weights[:, k, :1, None] * patterns[k] + weights[:, k, 1:, None] * 0.3 for k in range(3)) - 4.0


def conv_output_dtypes(model: nn.Module) -> set[torch.dtype]:
    """The dtypes the model's convolution modules return from now on (filled as they run)."""
    seen: set[torch.dtype] = set()
    for module in model.modules():
        if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
            module.register_forward_hook(lambda _m, _i, out: seen.add(out.dtype))
    return seen


def one_step(task: AdamTask, batch: tuple[torch.Tensor, ...]) -> tuple[float, torch.Tensor]:
    """The loss of one training step and its gradient (all parameters, flattened)."""
    torch.manual_seed(5)
    loss = task.train_step(batch, BatchShare(0, len(batch[0]), len(batch[0])))["loss"]
    return loss, torch.cat([p.grad.flatten() for p in task.model.parameters() if p.grad is not None])


def relative(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got - want).detach().norm() / want.detach().norm())


def test_an_autoencoder_step_under_amp_convolves_in_bf16_close_to_float32(bf16_cpu):
    mels = smooth_mels(4)
    model = tiny_autoencoder()
    tasks = {amp: AutoencoderTask(copy.deepcopy(model), 0.25, 1e-3, CPU, amp) for amp in (False, True)}
    dtypes = {amp: conv_output_dtypes(task.model) for amp, task in tasks.items()}
    steps = {amp: one_step(task, (mels,)) for amp, task in tasks.items()}
    assert tasks[True].amp and dtypes[True] == {torch.bfloat16} and dtypes[False] == {torch.float32}
    assert steps[True][0] == pytest.approx(steps[False][0], rel=BF16_TOLERANCE)
    assert relative(steps[True][1], steps[False][1]) < BF16_TOLERANCE
    assert steps[True][1].dtype == torch.float32  # gradients, parameters and Adam's state stay float32
    state = tasks[True].state_dict()
    tensors = [*state["model"].values(), *(v for s in state["optimizer"]["state"].values() for v in s.values())]
    assert {t.dtype for t in tensors if t.is_floating_point()} == {torch.float32}


def test_the_losses_under_amp_are_float32(bf16_cpu):
    task = AutoencoderTask(tiny_autoencoder(), 0.25, 1e-3, CPU, amp=True)
    with device_module.autocast(CPU, task.amp):
        losses = task.losses((smooth_mels(2),), task.network)
    assert {loss.dtype for loss in losses.values()} == {torch.float32}


def test_a_short_autoencoder_training_under_amp_ends_near_the_float32_one(bf16_cpu):
    """40 steps from one start on 8 clips: both losses fall to under a third of the first, and
    the bf16 run's last 5 steps average within 5 % of the float32 run's."""
    mels, model = smooth_mels(8), tiny_autoencoder()
    curves = {}
    for amp in (False, True):
        task = AutoencoderTask(copy.deepcopy(model), 0.25, 3e-3, CPU, amp)
        torch.manual_seed(7)
        curves[amp] = [task.train_step((mels,), BatchShare(0, 8, 8))["loss"] for _ in range(40)]
    tail = {amp: sum(curve[-5:]) / 5 for amp, curve in curves.items()}
    for curve in curves.values():
        assert sum(curve[-5:]) / 5 < curve[0] / 3
    assert tail[True] == pytest.approx(tail[False], rel=0.05)


def test_the_fast_prior_step_under_amp_convolves_directly_in_bf16_close_to_float32(bf16_cpu, monkeypatch):
    """Under CPU autocast the fast path's causal convolutions are oneDNN's direct bf16 ones (the
    float32 Winograd code is not called); loss and gradients stay within bf16's tolerance."""
    codes = torch.randint(0, 9, (4, 4, 6), generator=torch.Generator().manual_seed(1))
    batch = (codes, torch.tensor([0, 1, 2, 0]))
    reference = one_step(PriorTask(tiny_prior(), 1e-3, CPU, fast_path=False), batch)
    conv2d, seen = torch.nn.functional.conv2d, set()
    monkeypatch.setattr(torch.nn.functional, "conv2d", lambda *a, **k: _seen(conv2d(*a, **k), seen))
    monkeypatch.setattr(fast_prior, "winograd_conv2d", _not_called)
    loss, gradient = one_step(PriorTask(tiny_prior(), 1e-3, CPU, amp=True), batch)
    assert seen == {torch.bfloat16}
    assert loss == pytest.approx(reference[0], rel=BF16_TOLERANCE)
    assert relative(gradient, reference[1]) < BF16_TOLERANCE


def _seen(out: torch.Tensor, seen: set[torch.dtype]) -> torch.Tensor:
    seen.add(out.dtype)
    return out


def _not_called(*args: object, **kwargs: object) -> torch.Tensor:
    raise AssertionError("Winograd convolution called under bf16 autocast")


def test_winograd_convolutions_under_autocast_compute_in_float32():
    """A Winograd convolution called under autocast (conv="winograd") casts its inputs to float32
    and computes in float32 (bf16 would spoil its transforms): output and gradients equal the
    float32 call's on the same (bf16-representable) values."""
    generator = torch.Generator().manual_seed(4)
    x = torch.randn(2, 6, 9, 8, generator=generator).bfloat16()
    weight_v = torch.randn(5, 8, 5, 5, generator=generator, requires_grad=True)
    weight_g = torch.rand(5, 1, 1, 1, generator=generator, requires_grad=True)
    results = []
    for amp, given in ((False, x.float()), (True, x)):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            out = winograd_conv2d(given, weight_v, weight_g, None, (4, 0, 2, 2))
        results.append((out, *torch.autograd.grad(out.square().sum(), (weight_v, weight_g))))
    for got, want in zip(results[1], results[0], strict=True):
        assert got.dtype == torch.float32
        assert relative(got, want) < 1e-6


def test_attention_without_dropout_under_autocast_computes_in_float32_on_the_cpu(monkeypatch):
    """The fast path's fused attention (no dropout) under CPU bf16 autocast runs in float32
    (torch's CPU kernel is slower in bf16) and returns the inputs' dtype: its output is the float32
    computation on the same values, rounded to bf16, and so are the gradients reaching the bf16
    inputs (for the same upstream gradient)."""
    sdpa, seen = torch.nn.functional.scaled_dot_product_attention, set()
    monkeypatch.setattr(
        torch.nn.functional, "scaled_dot_product_attention", lambda q, *a, **k: _seen(sdpa(q, *a, **k), seen)
    )
    generator = torch.Generator().manual_seed(5)
    q, k, v, upstream = (torch.randn(2, 4, 30, 8, generator=generator).bfloat16() for _ in range(4))
    results = []
    for amp, inputs in ((False, (q.float(), k.float(), v.float())), (True, (q, k, v))):
        inputs = [x.clone().requires_grad_() for x in inputs]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            out = strictly_causal_attention(*inputs, 0.0)
        out.backward(upstream.to(out.dtype))
        results.append((out, *(x.grad for x in inputs)))
    assert results[1][0].dtype == torch.bfloat16
    for got, want in zip(results[1], results[0], strict=True):
        assert torch.equal(got, want.bfloat16())
    assert seen == {torch.float32}


def test_without_bf16_instructions_amp_trains_in_float32_after_one_warning(float32_cpu, caplog):
    model = tiny_autoencoder()
    with caplog.at_level(logging.WARNING, logger="foley.util.device"):
        tasks = [AutoencoderTask(copy.deepcopy(model), 0.25, 1e-3, CPU, amp=True) for _ in range(2)]
        prior_task = PriorTask(tiny_prior(), 1e-3, CPU, amp=True)
    dtypes = conv_output_dtypes(tasks[0].model)
    one_step(tasks[0], (smooth_mels(2),))
    assert not any(task.amp for task in (*tasks, prior_task)) and dtypes == {torch.float32}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["config key 'amp' asks for bf16 autocast, but this CPU has no bf16 instructions "
                        "(AMX-BF16 or AVX512-BF16): computing in float32"]


def test_amp_is_off_unless_asked_and_on_for_a_bf16_cpu(bf16_cpu):
    assert amp_enabled(CPU, True) and not amp_enabled(CPU, False)



def test_amp_auto_uses_bf16_where_native_and_float32_silently_elsewhere(monkeypatch, caplog):
    """`amp: auto` (the demo's): bf16 training on a CPU with bf16 instructions, float32 on one
    without and no warning; sampling on the CPU stays float32; on CUDA where torch supports bf16."""
    device_module._warn_float32.cache_clear()
    with caplog.at_level(logging.WARNING, logger="foley.util.device"):
        for native in (True, False):
            monkeypatch.setattr(device_module, "cpu_has_bf16", lambda native=native: native)
            assert amp_enabled(CPU, "auto") is native and PriorTask(tiny_prior(), 1e-3, CPU, amp="auto").amp is native
            assert amp_enabled(CPU, "auto", sampling=True) is False
        for supported in (True, False):
            monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda supported=supported: supported)
            assert amp_enabled(torch.device("cuda"), "auto") is supported
            assert amp_enabled(torch.device("cuda"), True) is True
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    device_module._warn_float32.cache_clear()


def test_config_amp_takes_false_true_or_auto_only():
    assert [load_config("quick", [f"amp={v}"]).amp for v in ("false", "true", "auto")] == [False, True, "auto"]
    for bad in ("1", "Auto", "bf16"):
        with pytest.raises(ConfigError, match=r"config key 'amp' must be one of false, true, auto"):
            load_config("quick", [f"amp={bad}"])

def test_the_fast_sampler_stays_float32_on_a_bf16_cpu(bf16_cpu):
    """Sampling on the CPU ignores amp: the maps stay the float32 (the reference sampler's) ones."""
    prior, labels, seeds = tiny_prior().eval(), torch.tensor([0, 1, 2]), [3, 4, 5]
    samplers = [FastSampler(prior, amp) for amp in (False, True)]
    assert not samplers[1].amp and not amp_enabled(CPU, True, sampling=True)
    assert torch.equal(samplers[1](labels, seeds), samplers[0](labels, seeds))


def test_the_capability_check_reads_torchs_cpu_capabilities(monkeypatch):
    for flags, expected in (({"amx_bf16": True}, True), ({"avx512_bf16": True}, True),
                            ({"avx512_f": True, "avx2": True}, False)):
        monkeypatch.setattr(torch.cpu, "get_capabilities", lambda flags=flags: flags)
        assert device_module.cpu_has_bf16() is expected
