"""The Kaiser sinc resampler against the published formula of torchaudio's sinc_interp_kaiser,
evaluated here directly, output sample by output sample, in float64."""

import math

import numpy as np
import pytest
from scipy.special import i0

from foley.audio.kaiser_resample import resample_kaiser


def direct_resample(x, orig, new, zeros=64, rolloff=0.9475937167399596, beta=14.769656459379492):
    """y[m] = (c / orig) sum_n x[n] sinc(tau) kaiser(tau), tau = c (m / new - n / orig), c = min(orig, new) rolloff
    (rates reduced by their gcd), kaiser(tau) = I0(beta sqrt(1 - (tau / zeros)^2)) / I0(beta) for |tau| <= zeros, else 0.

    As torchaudio evaluates it, m / new is split into k + j / new (m = k new + j) with j / new rounded to float32."""
    g = math.gcd(orig, new)
    orig, new = orig // g, new // g
    cutoff = min(orig, new) * rolloff
    m = np.arange(math.ceil(len(x) * new / orig))[:, None]
    n = np.arange(len(x))[None, :]
    phase = (m % new).astype(np.float32) / np.float32(new)
    tau = cutoff * ((m // new * orig - n) / orig + phase.astype(np.float64))
    inside = np.abs(tau) <= zeros
    kaiser = np.where(inside, i0(beta * np.sqrt(np.clip(1 - (tau / zeros) ** 2, 0, None))) / i0(beta), 0.0)
    return (cutoff / orig) * (np.sinc(tau) * kaiser) @ x


def signal(length, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    return 0.5 * np.sin(2 * np.pi * 0.013 * t) + 0.2 * rng.standard_normal(length)


@pytest.mark.parametrize("orig,new,length", [(44100, 32000, 2205), (22050, 32000, 1000), (48000, 32000, 1501),
                                             (16000, 32000, 777), (32000, 16000, 900)])
def test_resampler_equals_the_formula(orig, new, length):
    x = signal(length)
    ours = resample_kaiser(x, orig, new)
    expected = direct_resample(x, orig, new)
    assert ours.dtype == np.float32 and ours.shape == expected.shape == (math.ceil(length * new / orig),)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=2e-6)


def test_equal_rates_return_the_input_and_a_slow_sine_passes_unchanged():
    x = signal(500)
    np.testing.assert_array_equal(resample_kaiser(x, 32000, 32000), x.astype(np.float32))
    t = np.arange(44100) / 44100
    sine = np.sin(2 * np.pi * 440 * t)
    out = resample_kaiser(sine, 44100, 32000)
    expected = np.sin(2 * np.pi * 440 * np.arange(out.size) / 32000)
    middle = slice(2000, -2000)  # away from the zero-padded ends
    np.testing.assert_allclose(out[middle], expected[middle], atol=1e-4)
