"""Choosing a vocoder from the config, `foley vocode`, `foley bench vocoder`, and their error messages."""

import re

import numpy as np
import pytest
import soundfile as sf
import torch
from toy_hifigan import TOY_HIFIGAN, write_toy_hifigan

import foley.stages.commands.vocoding
from foley.audio.mel import log_mel
from foley.config import GriffinLimConfig, load_config
from foley.models.hifigan import Generator, HiFiGANConfig
from foley.stages.commands.cli import main
from foley.util.errors import CheckpointError, ConfigError
from foley.vocoders.base import build_vocoder, vocode_all
from foley.vocoders.griffinlim import GriffinLim
from foley.vocoders.hifigan import HiFiGANVocoder

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def hifigan_config(checkpoint, config_json, *more):
    overrides = ["vocoder.type=hifigan", f"vocoder.hifigan.checkpoint={checkpoint}", f"vocoder.hifigan.config={config_json}"]
    return load_config("quick", overrides + list(more))


def test_build_vocoder_loads_the_given_hifigan(tmp_path):
    checkpoint, config_json = write_toy_hifigan(tmp_path)
    vocoder = build_vocoder(hifigan_config(checkpoint, config_json, "vocoder.batch_size=2"))
    assert isinstance(vocoder, HiFiGANVocoder) and vocoder.batch_size == 2 and vocoder.to("cpu") is vocoder
    assert (vocoder.sample_rate, vocoder.hop_length, vocoder.name) == (22050, 256, f"hifigan({checkpoint})")
    mel = torch.randn(3, 80, 5) - 4
    torch.manual_seed(0)
    with torch.no_grad():
        expected = Generator(HiFiGANConfig.from_dict(TOY_HIFIGAN))(mel)[:, 0]
    torch.testing.assert_close(vocoder(mel), expected, atol=1e-5, rtol=0)
    griffinlim = build_vocoder(load_config("quick"))
    assert isinstance(griffinlim, GriffinLim) and griffinlim.to("cpu")(mel).shape == (3, 5 * 256)


def test_missing_files_name_what_is_expected(tmp_path):
    checkpoint, config_json = write_toy_hifigan(tmp_path)
    with pytest.raises(ConfigError, match=r"vocoder.hifigan.checkpoint' names '.*g_nope', which does not exist; "
                                          r"expected an official HiFi-GAN generator file g_<step> .*checkpoint/hifigan/"):
        hifigan_config(tmp_path / "g_nope", config_json)
    with pytest.raises(ConfigError, match=r"vocoder.hifigan.config' names .* expected the official HiFi-GAN config JSON"):
        hifigan_config(checkpoint, tmp_path / "nope.json")
    with pytest.raises(ConfigError, match=r"'vocoder.hifigan.config' is null but vocoder.hifigan.checkpoint is set"):
        load_config("quick", ["vocoder.type=hifigan", f"vocoder.hifigan.checkpoint={checkpoint}"])
    with pytest.raises(ConfigError, match=r"vocoder.hifigan.train.base' names .*nope.json', which does not exist"):
        load_config("quick", ["vocoder.type=hifigan", f"vocoder.hifigan.train.base={tmp_path / 'nope.json'}"])
    load_config("quick", [f"vocoder.hifigan.checkpoint={tmp_path / 'g_nope'}", f"vocoder.hifigan.config={config_json}"])
    no_pair = r"no trained HiFi-GAN in '.*' \(no g_<step>/do_<step> pair\); run the train_vocoder"
    with pytest.raises(CheckpointError, match=no_pair):
        build_vocoder(load_config("quick", ["vocoder.type=hifigan"]), trained_dir=tmp_path)


def test_a_file_without_generator_and_a_different_mel_are_refused(tmp_path):
    checkpoint, config_json = write_toy_hifigan(tmp_path)
    torch.save({"model": {}}, tmp_path / "g_other")
    with pytest.raises(CheckpointError, match=r"has no 'generator' entry \(expected the official g_<step> layout"):
        build_vocoder(hifigan_config(tmp_path / "g_other", config_json))
    with pytest.raises(ConfigError, match=r"does not take the run's mel: fmax 8000 where the run has mel.fmax 7000.0\. "):
        build_vocoder(hifigan_config(checkpoint, config_json, "mel.fmax=7000"))
    _, other_json = write_toy_hifigan(tmp_path / "other", num_mels=64, sampling_rate=16000)
    with pytest.raises(ConfigError, match=r"num_mels 64 where the run has mel.n_mels 80; .*sampling_rate 16000 where "
                                          r"the run has audio.sample_rate 22050"):
        build_vocoder(hifigan_config(checkpoint, other_json))


def test_vocode_all_batches_equal_lengths_and_keeps_the_order():
    calls = []

    def vocoder(mels):
        calls.append(tuple(mels.shape))
        return mels.sum(1)

    mels = [np.full((2, t), i, np.float32) for i, t in enumerate([3, 5, 3, 3, 5])]
    waves = vocode_all(vocoder, mels, batch_size=2)
    assert sorted(calls) == [(1, 2, 3), (2, 2, 3), (2, 2, 5)]
    assert [w.tolist() for w in waves] == [[2.0 * i] * m.shape[1] for i, m in enumerate(mels)]


def vocode(*args):
    return main(["vocode", "--quiet", *map(str, args)])


def test_vocode_a_file_and_a_folder(tmp_path):
    checkpoint, config_json = write_toy_hifigan(tmp_path / "hifigan")
    folder = tmp_path / "mels"
    folder.mkdir()
    rng = np.random.default_rng(0)
    np.save(folder / "one.npy", rng.normal(-5, 1, (80, 6)).astype(np.float32))
    np.save(folder / "three.npy", rng.normal(-5, 1, (3, 80, 4)))
    hifigan = ["--hifigan", checkpoint, "--hifigan-config", config_json]
    assert vocode(folder / "one.npy", *hifigan, "--out", tmp_path / "a") == 0
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["one.wav"]
    assert vocode(folder, *hifigan, "--out", tmp_path / "b", "--batch-size", "2") == 0
    names = sorted(p.name for p in (tmp_path / "b").iterdir())
    assert names == ["one.wav", "three_0001.wav", "three_0002.wav", "three_0003.wav"]
    info = sf.info(str(tmp_path / "b" / "three_0002.wav"))
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (22050, 1, 4 * 256, "PCM_16")
    assert (tmp_path / "a" / "one.wav").read_bytes() == (tmp_path / "b" / "one.wav").read_bytes()
    assert vocode(folder, "--griffinlim", "--out", tmp_path / "gl") == 0
    assert sf.info(str(tmp_path / "gl" / "one.wav")).frames == 6 * 256


@pytest.mark.parametrize("case, message", [
    ("shape", r"'.*bad.npy' holds an array of shape \(2, 64, 10\); expected \(80, frames\) or \(N, 80, frames\), "
              r"n_mels 80 from HiFi-GAN config '.*config.json'"),
    ("input", r"input '.*absent.npy' does not exist; give a .npy log-mel"),
    ("checkpoint", r"--hifigan '.*g_absent' does not exist; expected an official HiFi-GAN generator file g_<step>"),
    ("pair", r"--hifigan needs --hifigan-config JSON"),
    ("no generator", r"has no 'generator' entry"),
    ("exists", r"one.wav already exists \(1 wavs would be replaced\); use another --out or --force"),
])
def test_vocode_errors(tmp_path, capsys, case, message):
    checkpoint, config_json = write_toy_hifigan(tmp_path)
    np.save(tmp_path / "bad.npy", np.zeros((2, 64, 10), np.float32))
    np.save(tmp_path / "one.npy", np.zeros((80, 3), np.float32))
    torch.save({"model": {}}, tmp_path / "g_model")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "one.wav").write_bytes(b"")
    hifigan = ["--hifigan", checkpoint, "--hifigan-config", config_json]
    args = {
        "shape": [tmp_path / "bad.npy", *hifigan],
        "input": [tmp_path / "absent.npy", *hifigan],
        "checkpoint": [tmp_path / "one.npy", "--hifigan", tmp_path / "g_absent", "--hifigan-config", config_json],
        "pair": [tmp_path / "one.npy", "--hifigan", checkpoint],
        "no generator": [tmp_path / "one.npy", "--hifigan", tmp_path / "g_model", "--hifigan-config", config_json],
        "exists": [tmp_path / "one.npy", *hifigan],
    }[case]
    assert vocode(*args, "--out", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert err.startswith("foley: error: ") and len(err.strip().splitlines()) == 1
    assert re.search(message, err), err


def test_bench_vocoder_prints_a_row_per_batch_size(tmp_path, capsys, monkeypatch):
    checkpoint, config_json = write_toy_hifigan(tmp_path)
    toy = HiFiGANVocoder.from_files(checkpoint, config_json)
    monkeypatch.setattr(foley.stages.commands.vocoding, "dcase_vocoder", lambda: toy)
    assert main(["bench", "vocoder", "--batch-sizes", "1,3", "--repeats", "1", "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "80 x 344 mels (4 s clips), device cpu" in lines[0]
    assert lines[2] == "| batch size | clips/s | s per batch | x real time |"
    assert [line.split("|")[1].strip() for line in lines[4:]] == ["1", "3"]
    assert main(["bench", "vocoder", "--batch-sizes", "0"]) == 2


def test_the_dcase_benchmark_vocoder_is_the_dcase_generator():
    vocoder = foley.stages.commands.vocoding.dcase_vocoder()
    assert round(sum(p.numel() for p in vocoder.generator.parameters()) / 1e6, 2) == 13.93
    assert vocoder.config.upsample_rates == (8, 8, 2, 2) and vocoder.config.mel_config() == load_config("base").mel


def test_griffinlim_recovers_a_log_mel_and_keeps_silence_silent():
    """Griffin-Lim's phase iterations bring the output's log-mel towards the given one (a decaying
    chord: the loud bins' mean error falls by more than 40 % from random phases to 16 iterations), and an all-silent
    mel gives finite zeros, not NaN (the phase update of a zero bin is zero)."""
    config = load_config("quick")
    rate = config.audio.sample_rate
    t = torch.arange(rate) / rate
    chord = sum(torch.sin(2 * torch.pi * f * t * (1 + 0.3 * t)) / k for k, f in enumerate((220.0, 440.0, 660.0, 1320.0), 1))
    audio = (chord * torch.exp(-3 * t) * 0.3)[None]
    mel = log_mel(audio, config.mel, rate)
    loud = mel > mel.max() - 6
    errors = {}
    for n_iter in (0, 16):
        out = GriffinLim(config.mel, rate, GriffinLimConfig(n_iter=n_iter, momentum=0.99))(mel)
        assert out.shape == (1, mel.shape[-1] * 256)
        errors[n_iter] = float((log_mel(out, config.mel, rate) - mel)[loud].abs().mean())
    assert errors[16] < 0.6 * errors[0]
    silent = GriffinLim(config.mel, rate, config.vocoder.griffinlim)(torch.full((2, 80, 8), -40.0))
    assert torch.isfinite(silent).all() and silent.abs().max() < 1e-6
