"""The clip policy's soxr resampler and the standard FAD protocol's fadtk (torchaudio kaiser_best) resampler."""

import dataclasses
import math

import numpy as np
import pytest
import soundfile as sf
import soxr

from foley.audio.clips import ClipPolicy, read_recording
from foley.audio.resampling import CLIP_RESAMPLER, FAD_RESAMPLER, kaiser_best, resample
from foley.evaluate.builtin_embedder import BuiltinEmbedder
from foley.evaluate.protocols import STANDARD, read_samples

# torchaudio 2.11 functional.resample(x, a, b, lowpass_filter_width=64, rolloff=0.9475937167399596,
# resampling_method="sinc_interp_kaiser", beta=14.769656459379492) in float64 (fadtk's settings), on
# x[n] = sin(0.1 n) + 0.5 cos(0.37 n) + (n mod 7) / 10, n < 200: {output index: value}
TORCHAUDIO_GOLDEN = {
    (22050, 16000): (146, {0: 0.4390215322677965, 3: 0.8341890758764829, 17: 0.6485708654694076,
                           72: -0.13750971811641718, 145: 0.28944904066567245}),
    (11025, 16000): (291, {0: 0.4801324512042733, 3: 0.7536811678356823, 17: 1.1528187428534795,
                           72: -0.5538436682857268, 290: 0.2087434983065602}),
    (48000, 16000): (67, {0: 0.3513118292527117, 3: 0.45360191367634056, 17: -0.3074939824639524,
                          40: -0.002211068404091572, 66: 0.6035003279847289}),
}


def golden_input() -> np.ndarray:
    n = np.arange(200)
    return np.sin(0.1 * n) + 0.5 * np.cos(0.37 * n) + (n % 7) / 10


@pytest.mark.parametrize("rates", list(TORCHAUDIO_GOLDEN))
def test_kaiser_best_matches_torchaudio_as_fadtk_calls_it(rates):
    length, values = TORCHAUDIO_GOLDEN[rates]
    out = kaiser_best(golden_input(), *rates)
    assert out.shape == (length,)
    for index, value in values.items():
        assert out[index] == pytest.approx(value, abs=1e-13)


def direct_kaiser_sinc(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Output sample m is the Kaiser-windowed sinc interpolation of x at time m / rate_out, summed
    over the input samples within 64 zero crossings (a low-pass at rolloff * the lower Nyquist)."""
    zeros, rolloff, beta = 64, 0.9475937167399596, float(np.float32(14.769656459379492))
    g = math.gcd(rate_in, rate_out)
    orig, new = rate_in // g, rate_out // g
    base = min(orig, new) * rolloff
    n = np.arange(len(x))
    out = []
    for m in range(math.ceil(new * len(x) / orig)):
        block, phase = divmod(m, new)
        t = ((n - block * orig) / orig - phase / new) * base
        near = np.abs(t) <= zeros
        window = np.i0(beta * np.sqrt(1 - (t[near] / zeros) ** 2)) / float(np.float32(np.i0(beta)))
        out.append(np.sum(x[near] * np.sinc(t[near]) * window * base / orig))
    return np.array(out)


@pytest.mark.parametrize("rates", [(22050, 16000), (16000, 22050), (44100, 16000), (17050, 16000)])
def test_kaiser_best_equals_the_direct_sum(rates):
    x = np.random.default_rng(sum(rates)).standard_normal(120)
    np.testing.assert_allclose(kaiser_best(x, *rates), direct_kaiser_sinc(x, *rates), rtol=0, atol=1e-12)


def test_the_standard_protocol_reads_any_format_and_resamples_as_fadtk(tmp_path):
    audio = np.random.default_rng(5).uniform(-0.5, 0.5, (44100, 2))
    path = tmp_path / "clip.FLAC"
    sf.write(path, audio, 44100, format="FLAC", subtype="PCM_24")
    decoded, _ = sf.read(path, dtype="float64")
    framing = STANDARD.framing(BuiltinEmbedder())
    np.testing.assert_array_equal(read_samples(path, framing), kaiser_best(decoded.mean(axis=1), 44100, 16000))
    assert read_samples(path, framing).shape == (16000,)


def test_the_clip_policy_resamples_with_soxr_hq(tmp_path):
    audio = np.random.default_rng(6).uniform(-0.5, 0.5, 44100).astype(np.float32)
    path = tmp_path / "clip.wav"
    sf.write(path, audio, 44100, subtype="FLOAT")
    recording = read_recording(path, ClipPolicy(22050, 88200))
    np.testing.assert_array_equal(recording.audio, soxr.resample(audio, 44100, 22050, quality="HQ"))
    assert recording.conversions == ("resampled 44100 -> 22050 Hz (soxr HQ)",)
    assert CLIP_RESAMPLER.startswith("soxr HQ (python-soxr ")
    assert resample(audio, 22050, 22050) is not None and resample(audio, 22050, 22050).shape == (44100,)


def test_both_resamplers_keep_a_tone_and_cut_above_the_new_nyquist():
    t = np.arange(44100) / 44100
    for run in (lambda x: resample(x, 44100, 16000), lambda x: kaiser_best(x, 44100, 16000)):
        kept = run(np.sin(2 * np.pi * 1000 * t).astype(np.float32))
        spectrum = np.abs(np.fft.rfft(kept))
        assert abs(np.argmax(spectrum) * 16000 / len(kept) - 1000) < 2
        alias = run(np.sin(2 * np.pi * 12000 * t).astype(np.float32))  # above 8 kHz: must not fold to 4 kHz
        assert np.sqrt(np.mean(alias[500:-500] ** 2)) < 1e-3


def test_the_framing_key_names_the_resampler_so_caches_never_mix_them():
    assert STANDARD.resampler == FAD_RESAMPLER and "kaiser" in FAD_RESAMPLER
    framing = STANDARD.framing(BuiltinEmbedder())
    assert dataclasses.replace(framing, resampler="soxr HQ").key != framing.key
