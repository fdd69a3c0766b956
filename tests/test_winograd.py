"""Winograd convolution (foley.train.fast.winograd) against direct convolution and Toom-Cook maths."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from foley.train.fast.winograd import tile_size, toom_cook, winograd_conv2d

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("tile,kernel", [(4, 5), (4, 3), (4, 2), (4, 4), (2, 7), (4, 1)])
def test_toom_cook_matrices_compute_a_correlation(tile, kernel):
    a_t, g, b_t = toom_cook(tile, kernel)
    generator = torch.Generator().manual_seed(tile * 10 + kernel)
    taps = torch.randn(kernel, dtype=torch.float64, generator=generator)
    window = torch.randn(tile + kernel - 1, dtype=torch.float64, generator=generator)
    direct = torch.stack([(taps * window[i : i + kernel]).sum() for i in range(tile)])
    torch.testing.assert_close(a_t @ ((g @ taps) * (b_t @ window)), direct, rtol=0, atol=1e-12)


def direct_conv(x, weight_v, weight_g, mask, padding):
    """The reference: weight norm of the masked kernel, then F.conv2d on channels-first maps."""
    top, bottom, left, right = padding
    masked = weight_v * mask
    weight = masked * (weight_g / masked.flatten(1).norm(dim=1).view(-1, 1, 1, 1))
    return F.conv2d(F.pad(x.permute(0, 3, 1, 2), (left, right, top, bottom)), weight).permute(0, 2, 3, 1)


def causal_mask(rows: int, cols: int) -> torch.Tensor:
    mask = torch.ones(rows, cols, dtype=torch.float64)
    mask[-1, cols // 2 :] = 0
    return mask


CASES = [  # (batch, height, width, in, out, kernel, padding (top, bottom, left, right))
    (2, 4, 6, 3, 5, (5, 5), (4, 0, 2, 2)),
    (1, 7, 9, 4, 2, (3, 3), (2, 0, 1, 1)),
    (2, 5, 11, 3, 3, (7, 7), (6, 0, 3, 3)),
    (1, 6, 5, 2, 3, (2, 4), (1, 1, 0, 3)),
    (1, 20, 86, 8, 6, (5, 5), (4, 0, 2, 2)),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c[5][0]}x{c[5][1]}-{c[1]}x{c[2]}" for c in CASES])
def test_output_and_gradients_equal_direct_convolution_in_float64(case):
    batch, height, width, channels, out_channels, kernel, padding = case
    generator = torch.Generator().manual_seed(sum(case[:5]))
    x = torch.randn(batch, height, width, channels, dtype=torch.float64, generator=generator, requires_grad=True)
    weight_v = torch.randn(out_channels, channels, *kernel, dtype=torch.float64, generator=generator, requires_grad=True)
    weight_g = (torch.rand(out_channels, 1, 1, 1, dtype=torch.float64, generator=generator) + 0.5).requires_grad_()
    mask = causal_mask(*kernel)
    fast = winograd_conv2d(x, weight_v, weight_g, mask, padding)
    direct = direct_conv(x, weight_v, weight_g, mask, padding)
    assert fast.shape == direct.shape
    torch.testing.assert_close(fast, direct, rtol=1e-10, atol=1e-12)
    upstream = torch.randn(direct.shape, dtype=torch.float64, generator=generator)
    fast_grads = torch.autograd.grad(fast, (x, weight_v, weight_g), upstream)
    direct_grads = torch.autograd.grad(direct, (x, weight_v, weight_g), upstream)
    for name, a, b in zip(("x", "weight_v", "weight_g"), fast_grads, direct_grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-11, msg=name)


def test_gradcheck_without_a_mask_with_a_bias():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, 3, 5, 2, dtype=torch.float64, generator=generator, requires_grad=True)
    weight_v = torch.randn(2, 2, 3, 3, dtype=torch.float64, generator=generator, requires_grad=True)
    weight_g = torch.rand(2, 1, 1, 1, dtype=torch.float64, generator=generator).add_(0.5).requires_grad_()
    bias = torch.randn(2, dtype=torch.float64, generator=generator, requires_grad=True)
    conv = lambda x, v, g, b: winograd_conv2d(x, v, g, None, (2, 1, 1, 0), b)
    assert torch.autograd.gradcheck(conv, (x, weight_v, weight_g, bias))


def test_float32_error_is_a_few_times_a_direct_convolutions():
    """Per layer at the prior's width (256 channels): relative L2 error against float64 below 1e-5."""
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(1, 8, 22, 256, generator=generator)
    weight_v = torch.randn(64, 256, 5, 5, generator=generator)
    weight_g = torch.rand(64, 1, 1, 1, generator=generator) + 0.5
    mask = causal_mask(5, 5).float()
    exact = direct_conv(x.double(), weight_v.double(), weight_g.double(), mask.double(), (4, 0, 2, 2))
    fast = winograd_conv2d(x, weight_v, weight_g, mask, (4, 0, 2, 2))
    assert (fast.double() - exact).norm() / exact.norm() < 1e-5


def test_kernels_longer_than_the_points_allow_are_refused():
    assert tile_size(5) == 4 and tile_size(7) == 2 and tile_size(9) is None
    with pytest.raises(ValueError, match="no Winograd transform for a 9 x 9 kernel"):
        winograd_conv2d(torch.zeros(1, 9, 9, 1), torch.ones(1, 1, 9, 9), torch.ones(1, 1, 1, 1), None, (8, 0, 4, 4))
