import numpy as np
import pytest
import soundfile as sf
import torch

from foley.audio.clips import fit_length, read_clip, write_wav
from foley.audio.mel import log_mel, mel_basis
from foley.config import MelConfig
from foley.util.errors import AudioError

SR = 22050
MEL = MelConfig(n_fft=1024, hop_length=256, win_length=1024, n_mels=80, fmin=0, fmax=8000)


def reference_log_mel(audio: np.ndarray) -> np.ndarray:
    """HiFi-GAN's formula written out in float64 numpy, frame by frame."""
    pad = (MEL.n_fft - MEL.hop_length) // 2
    x = np.pad(audio.astype(np.float64), (pad, pad), mode="reflect")
    n = np.arange(MEL.n_fft)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / MEL.n_fft)  # periodic Hann
    frames = 1 + (len(x) - MEL.n_fft) // MEL.hop_length
    spec = np.stack([np.fft.rfft(x[t * MEL.hop_length : t * MEL.hop_length + MEL.n_fft] * window) for t in range(frames)], 1)
    magnitude = np.sqrt(spec.real**2 + spec.imag**2 + 1e-9)
    return np.log(np.maximum(mel_basis(MEL, SR).astype(np.float64) @ magnitude, 1e-5))


def test_log_mel_follows_hifigan_formula_and_shape():
    rng = np.random.default_rng(0)
    t = np.arange(88200) / SR
    audio = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(88200)).astype(np.float32)
    ours = log_mel(torch.from_numpy(audio), MEL, SR).numpy()
    assert ours.shape == (80, 344)
    np.testing.assert_allclose(ours, reference_log_mel(audio), atol=2e-4)


def test_log_mel_is_batched_consistently():
    audio = torch.randn(3, 88200) * 0.1
    batched = log_mel(audio, MEL, SR)
    single = torch.stack([log_mel(a, MEL, SR) for a in audio])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-5)


def test_mel_basis_is_slaney_up_to_fmax():
    basis = mel_basis(MEL, SR)
    assert basis.shape == (80, 513)
    freqs = np.arange(513) * SR / 1024
    assert basis[:, freqs > 8000 + SR / 1024].sum() == 0
    assert np.all(basis.sum(1) > 0)


def _write(path, data, rate, subtype="PCM_16"):
    sf.write(str(path), data, rate, subtype=subtype)
    return path


def test_read_clip_applies_the_policy(tmp_path):
    rng = np.random.default_rng(1)
    stereo = _write(tmp_path / "stereo.wav", rng.uniform(-0.5, 0.5, (44100 * 4, 2)), 44100)
    clip = read_clip(stereo, SR, 88200)
    assert clip.audio.shape == (88200,) and clip.audio.dtype == np.float32
    assert any("mono" in c for c in clip.conversions) and any("44100 -> 22050" in c for c in clip.conversions)

    short = read_clip(_write(tmp_path / "short.wav", rng.uniform(-0.5, 0.5, SR), SR), SR, 88200)
    assert short.audio.shape == (88200,) and np.all(short.audio[SR:] == 0)
    assert short.conversions == ("zero-padded 22050 -> 88200 samples",)

    long = read_clip(_write(tmp_path / "long.wav", rng.uniform(-0.5, 0.5, 6 * SR), SR), SR, 88200)
    assert long.conversions == ("cropped 132300 -> 88200 samples",)

    exact = read_clip(_write(tmp_path / "ok.wav", rng.uniform(-0.5, 0.5, 88200), SR), SR, 88200)
    assert exact.conversions == ()


def test_resampling_keeps_a_tone_in_place(tmp_path):
    t = np.arange(44100 * 4) / 44100
    path = _write(tmp_path / "tone.wav", 0.5 * np.sin(2 * np.pi * 1000 * t), 44100)
    audio = read_clip(path, SR, 88200).audio
    spectrum = np.abs(np.fft.rfft(audio))
    assert abs(np.argmax(spectrum) * SR / len(audio) - 1000) < 2


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda p: p.write_bytes(b""), "unreadable"),
        (lambda p: p.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk" * 4), "truncated"),
        (lambda p: sf.write(str(p), np.zeros((0,), np.float32), SR), "empty"),
        (lambda p: sf.write(str(p), np.array([0.1, np.nan, 0.2] * 100, np.float32), SR, subtype="FLOAT"), "non-finite"),
    ],
)
def test_bad_files_are_rejected_with_a_reason(tmp_path, make, reason):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioError, match=reason):
        read_clip(path, SR, 88200)


def test_write_wav_is_16bit_mono_clipped_and_atomic(tmp_path):
    path = tmp_path / "a" / "out.wav"
    write_wav(path, np.array([0.0, 0.5, 2.0, -3.0], np.float32), SR)
    info = sf.info(str(path))
    assert (info.samplerate, info.channels, info.subtype) == (SR, 1, "PCM_16")
    data, _ = sf.read(str(path), dtype="int16")
    assert data.tolist() == [0, 16384, 32767, -32767]
    assert [p.name for p in path.parent.iterdir()] == ["out.wav"]


def test_fit_length():
    assert fit_length(np.ones(5, np.float32), 5)[1] is None
    assert fit_length(np.ones(3, np.float32), 5)[0].tolist() == [1, 1, 1, 0, 0]
