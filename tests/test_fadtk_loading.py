"""The DCASE 2024 fork's loading: mono mean, Kaiser resampling, 16-bit round trip."""

import io

import numpy as np
import soundfile as sf
from test_kaiser_resample import direct_resample

from foley.evaluate.fadtk_loading import pcm16_round_trip, read_fadtk


def wav_bytes(values, rate):
    buffer = io.BytesIO()
    sf.write(buffer, values, rate, subtype="PCM_16", format="WAV")
    return buffer.getvalue()


def test_a_16_bit_clip_at_the_embedders_rate_comes_through_unchanged():
    values = np.random.default_rng(0).integers(-32768, 32768, size=3000).astype(np.int16)
    np.testing.assert_array_equal(read_fadtk(wav_bytes(values, 32000), 32000), values / 32768.0)


def test_stereo_44k_is_averaged_resampled_and_quantised():
    rng = np.random.default_rng(1)
    t = np.arange(2205) / 44100
    left = np.round((0.4 * np.sin(2 * np.pi * 500 * t) + 0.05 * rng.standard_normal(t.size)) * 32767).astype(np.int16)
    right = np.round(0.3 * np.sin(2 * np.pi * 1500 * t) * 32767).astype(np.int16)
    ours = read_fadtk(wav_bytes(np.stack([left, right], 1), 44100), 32000)
    mono = (left / 32768.0 + right / 32768.0) / 2
    expected = np.round(direct_resample(mono, 44100, 32000) * 32768) / 32768
    assert ours.shape == expected.shape == (1600,)
    assert np.abs(ours - expected).max() <= 1 / 32768 and np.mean(ours != expected) < 0.01  # float32 ties only


def test_round_trip_clips_to_16_bits():
    np.testing.assert_array_equal(pcm16_round_trip(np.array([1.5, -2.0, 0.25, 1 / 65536 * 0.9])),
                                  [32767 / 32768, -1.0, 0.25, 0.0])
