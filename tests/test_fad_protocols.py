"""The dcase2023 and standard protocols, the official input checks, and embed_clips with its cache."""

import numpy as np
import pytest
import soundfile as sf
import torch
from fake_embedders import RefusingEmbedder, StatsEmbedder

from foley.audio.clips import write_wav
from foley.evaluate.embedding import EmbedOptions, embed_clips
from foley.evaluate.protocols import (
    DCASE2023,
    OFFICIAL_INPUTS,
    STANDARD,
    ClipArray,
    InputRequirements,
    check_inputs,
    class_files,
    clip_windows,
    enforce_inputs,
    get_protocol,
    peak_normalise,
    read_samples,
)
from foley.models import vggish_input
from foley.util.errors import AudioError, ConfigError, DataError, FoleyError

DCASE_FRAMING = DCASE2023.framing(StatsEmbedder())
STANDARD_FRAMING = STANDARD.framing(StatsEmbedder())


def pcm_clip(seed, samples=88200):
    return np.random.default_rng(seed).integers(-20000, 20000, samples).astype(np.int16)


def test_dcase2023_framing_gives_ten_windows_per_four_second_clip():
    x = pcm_clip(0).astype(np.float64)
    windows = clip_windows(x, DCASE_FRAMING)
    assert windows.shape == (10, 16000)
    peak = x.max()
    for k in range(10):
        np.testing.assert_array_equal(windows[k], x[8000 * k : 8000 * k + 16000] / peak)
    assert clip_windows(x[:16000 + 7999], DCASE_FRAMING).shape == (1, 16000)
    assert clip_windows(x[:15999], DCASE_FRAMING).shape == (0, 16000)


def test_peak_normalisation_uses_the_positive_peak_floored_at_a_tenth():
    x = np.array([0.0, 2000.0, -30000.0, 500.0])
    np.testing.assert_array_equal(peak_normalise(x), x / 2000.0)
    quiet = np.array([0.02, -0.05, 0.04])
    np.testing.assert_allclose(peak_normalise(quiet), quiet / 0.1)
    negative = np.array([-3.0, -1.0])
    np.testing.assert_allclose(peak_normalise(negative), negative * 10)


def test_dcase2023_reads_int16_values_without_resampling(tmp_path):
    values = pcm_clip(1)
    sf.write(tmp_path / "a.wav", values, 22050, subtype="PCM_16")
    samples = read_samples(tmp_path / "a.wav", DCASE_FRAMING)
    assert samples.dtype == np.float64 and samples.shape == (88200,)
    np.testing.assert_array_equal(samples, values.astype(np.float64))
    sf.write(tmp_path / "a.flac", values, 22050, subtype="PCM_16", format="FLAC")  # relaxed checks: other formats
    np.testing.assert_array_equal(read_samples(tmp_path / "a.flac", DCASE_FRAMING), samples)
    audio = np.random.default_rng(2).uniform(-0.9, 0.9, 88200)
    write_wav(tmp_path / "b.wav", audio, 22050)
    from_array = read_samples(ClipArray(audio, 22050), DCASE_FRAMING)
    np.testing.assert_array_equal(from_array, read_samples(tmp_path / "b.wav", DCASE_FRAMING))


def test_standard_resamples_and_frames_contiguous_vggish_examples(tmp_path):
    audio = np.random.default_rng(3).uniform(-0.5, 0.5, 88200).astype(np.float32)
    sf.write(tmp_path / "c.wav", audio, 22050, subtype="FLOAT")
    samples = read_samples(tmp_path / "c.wav", STANDARD_FRAMING)
    assert samples.shape == (64000,)
    windows = clip_windows(samples, STANDARD_FRAMING)
    assert windows.shape == (4, 15600)
    per_window = vggish_input.waveform_examples(torch.from_numpy(windows))[:, 0]
    whole_clip = vggish_input.waveform_examples(torch.from_numpy(samples)[None])[0]
    torch.testing.assert_close(per_window, whole_clip, rtol=0, atol=1e-12)
    assert clip_windows(samples[:9000], STANDARD_FRAMING).shape == (1, 15600)


def test_protocols_are_named_and_unknown_names_list_the_choices():
    assert get_protocol("dcase2023") is DCASE2023 and get_protocol("standard") is STANDARD
    assert DCASE_FRAMING.key != STANDARD_FRAMING.key and DCASE_FRAMING.key.startswith("dcase2023-")
    with pytest.raises(ConfigError, match="dcase2023, standard"):
        get_protocol("fadtk")


def test_input_checks_report_every_offender(tmp_path):
    (tmp_path / "dog_bark").mkdir()
    (tmp_path / "rain").mkdir()
    for i in range(3):
        sf.write(tmp_path / "dog_bark" / f"{i}.wav", pcm_clip(i), 22050, subtype="PCM_16")
    sf.write(tmp_path / "rain" / "stereo.wav", np.zeros((88200, 2), np.int16), 44100, subtype="PCM_16")
    sf.write(tmp_path / "rain" / "short.wav", pcm_clip(5, 1000), 22050, subtype="PCM_16")
    sf.write(tmp_path / "dog_bark" / "LOUD.FLAC", pcm_clip(6), 22050, subtype="PCM_16", format="FLAC")
    (tmp_path / "rain" / "notes.txt").write_text("not a clip")
    files = class_files(tmp_path, ["dog_bark", "rain"])
    assert [p.name for p in files["rain"]] == ["short.wav", "stereo.wav"]
    need = InputRequirements(clips_per_class=3)
    problems = {(p.path.split("/")[-1], p.problem) for p in check_inputs(files, need)}
    assert problems == {
        ("dog_bark", "4 audio files, expected exactly 3"),
        ("LOUD.FLAC", "format FLAC, expected WAV"),
        ("rain", "2 audio files, expected exactly 3"),
        ("stereo.wav", "sample rate 44100 Hz, expected 22050"),
        ("stereo.wav", "2 channels, expected 1"),
        ("short.wav", "1000 samples, expected 88200"),
    }
    with pytest.raises(DataError) as err:
        enforce_inputs(files, relax=False, need=need)
    assert "6 input problem(s)" in str(err.value) and "stereo.wav: 2 channels" in str(err.value)
    assert len(enforce_inputs(files, relax=True, need=need)) == 6
    assert OFFICIAL_INPUTS == InputRequirements(100, 22050, 1, 88200, "PCM_16", "WAV")
    with pytest.raises(DataError, match="no class folder"):
        class_files(tmp_path, ["gunshot"])


def test_embed_clips_batches_independently_and_caches_by_content(tmp_path):
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"{i}.wav")
        sf.write(paths[-1], pcm_clip(10 + i), 22050, subtype="PCM_16")
    array = ClipArray(np.random.default_rng(4).uniform(-1, 1, 40000), 22050)
    clips = [*paths, array]
    one = embed_clips(clips, StatsEmbedder(), DCASE2023, EmbedOptions(batch_size=1))
    cached_options = EmbedOptions(batch_size=7, cache_dir=tmp_path / "cache")
    many = embed_clips(clips, StatsEmbedder(), DCASE2023, cached_options)
    assert [e.shape for e in one] == [(10, 3)] * 3 + [(4, 3)]
    for a, b in zip(one, many):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    windows = clip_windows(read_samples(paths[0], DCASE_FRAMING), DCASE_FRAMING)
    np.testing.assert_allclose(one[0][:, 2], np.abs(windows).max(1), rtol=1e-6)

    (tmp_path / "renamed.wav").write_bytes(paths[1].read_bytes())
    cached = embed_clips([tmp_path / "renamed.wav", array], RefusingEmbedder(), DCASE2023, cached_options)
    np.testing.assert_array_equal(cached[0], many[1])
    other_protocol, other_embedder = StatsEmbedder(), StatsEmbedder("other")
    embed_clips(paths[:1], other_protocol, STANDARD, cached_options)
    embed_clips(paths[:1], other_embedder, DCASE2023, cached_options)
    assert other_protocol.calls > 0 and other_embedder.calls > 0


def test_embed_clips_names_the_clip_it_cannot_use(tmp_path):
    (tmp_path / "broken.wav").write_bytes(b"RIFF....")
    with pytest.raises(AudioError, match="clip '.*broken.wav': truncated: the file ends before its data chunk"):
        embed_clips([tmp_path / "broken.wav"], StatsEmbedder(), DCASE2023)
    with pytest.raises(AudioError, match="clip 'silent': zero-length"):
        embed_clips([ClipArray(np.zeros(0), 22050, "silent")], StatsEmbedder(), STANDARD)


def test_a_protocol_with_a_fixed_rate_refuses_an_embedder_at_another_rate():
    embedder = StatsEmbedder()
    embedder.sample_rate = 32000
    with pytest.raises(FoleyError, match="dcase2023 makes 16000 Hz windows but embedder stats takes 32000 Hz"):
        embed_clips([ClipArray(np.zeros(20000), 16000)], embedder, DCASE2023)


def test_standard_takes_the_embedders_rate_and_window_and_whole_clips_batch_by_length():
    embedder = StatsEmbedder()
    embedder.sample_rate, embedder.window, embedder.hop = 32000, 0, 0  # one embedding per whole clip
    rng = np.random.default_rng(4)
    clips = [ClipArray(rng.uniform(-0.5, 0.5, n), 22050, f"c{n}") for n in (44100, 44100, 66150, 44100)]
    framing = STANDARD.framing(embedder)
    assert (framing.sample_rate, framing.window) == (32000, 0)
    embedded = embed_clips(clips, embedder, STANDARD, EmbedOptions(batch_size=8))
    for clip, rows in zip(clips, embedded):
        samples = read_samples(clip, framing)
        assert samples.shape == (round(len(clip.samples) * 32000 / 22050),)
        expected = embedder.embed(torch.from_numpy(samples)[None]).numpy()
        np.testing.assert_allclose(rows, expected, rtol=1e-6)
