"""`foley bench sample` at toy settings, the reference's extrapolation, the DCASE-set timing path."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from foley.config import load_config
from foley.models.builders import build_autoencoder
from foley.models.pixelsnail import PixelSNAIL
from foley.sample.generate import generate
from foley.stages.commands import bench_sample as bench
from foley.stages.commands import bench_sizes
from foley.stages.commands.cli import main
from foley.vocoders.base import build_vocoder

KEYS = {"reference_s_per_clip", "fast_s_per_clip", "ratio", "reference_extrapolated", "device", "size", "batch"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def bench_json(capsys, *args: str) -> dict:
    assert main(["bench", "sample", "--size", "small", "--device", "cpu", "--json", "-q", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_bench_sample_json_with_the_whole_reference(capsys):
    result = bench_json(capsys, "--batch", "2", "--map", "6x12", "--reference-rows", "0")
    assert KEYS <= set(result)
    assert result["size"] == "small" and result["batch"] == 2 and result["device"] == "cpu"
    assert result["map"] == "6x12" and result["reference_extrapolated"] is False
    assert result["maps_identical"] is True and result["dcase_set"] is None
    assert result["ratio"] > 1
    assert result["ratio"] == pytest.approx(result["reference_s_per_clip"] / result["fast_s_per_clip"])


def test_bench_sample_times_guidance_with_the_same_maps_as_the_reference(capsys):
    result = bench_json(capsys, "--batch", "2", "--map", "4x6", "--reference-rows", "0", "--guidance", "2.5")
    assert result["guidance"] == 2.5 and result["fast_guided_s_per_clip"] > 0
    assert result["guidance_cost"] == pytest.approx(result["fast_guided_s_per_clip"] / result["fast_s_per_clip"])
    assert result["maps_identical"] is True
    unguided = bench_json(capsys, "--batch", "1", "--map", "4x6", "--reference-rows", "0", "--guidance", "1")
    assert unguided["fast_guided_s_per_clip"] is None and unguided["guidance_cost"] is None
    assert main(["bench", "sample", "--batch", "1", "--map", "4x6", "--reference-rows", "1", "--device", "cpu", "-q"]) == 0
    assert "fast, CFG" in capsys.readouterr().out


def test_bench_sample_json_with_an_extrapolated_reference(capsys):
    result = bench_json(capsys, "--batch", "1", "--map", "6x10", "--reference-rows", "2")
    assert result["reference_extrapolated"] is True and result["reference_rows_timed"] == [0, 5]
    assert result["maps_identical"] is None and result["ratio"] > 1


def test_the_text_report_says_when_the_reference_is_extrapolated(capsys):
    assert main(["bench", "sample", "--batch", "1", "--map", "4x6", "--reference-rows", "2", "--device", "cpu", "-q"]) == 0
    out = capsys.readouterr().out
    assert "EXTRAPOLATED from steps timed on 2 rows (row 0:" in out and "s per clip" in out and "ratio" in out


@pytest.mark.parametrize("args,message", [
    (["--map", "20by86"], "--map must be HEIGHTxWIDTH"),
    (["--batch", "0"], "--batch must be at least 1"),
    (["--reference-rows", "-1"], "--reference-rows must be at least 0"),
    (["--guidance", "-1"], "--guidance must be at least 0"),
    (["--dcase-set", "on", "--map", "40x43"], "needs the DCASE prior map 20x86"),
])
def test_bad_arguments_fail_before_torch_is_imported(args, message):
    probe = ("import sys; from foley.stages.commands.cli import main; code = main(['bench', 'sample', *sys.argv[1:]]); "
             "print('torch' in sys.modules, code)")
    proc = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True)
    assert proc.stdout.split() == ["False", "2"] and message in proc.stderr


def test_unknown_sizes_list_the_known_ones():
    with pytest.raises(ValueError, match="sizes: small, baseline"):
        bench.bench_prior("huge", (4, 4), torch.device("cpu"))


def test_the_baseline_size_is_the_dcase_prior():
    config = load_config("dcase_baseline")
    section = {key: getattr(config.prior, key) for key in bench_sizes.PRIOR_SIZES["baseline"]}
    assert section == bench_sizes.PRIOR_SIZES["baseline"]
    assert config.map_shape == bench_sizes.DCASE_MAP
    assert config.autoencoder.quantizer.codebook_size == bench_sizes.VOCAB_SIZE


def test_extrapolation_is_exact_for_a_quadratic_cost():
    def cost(rows_read: int) -> float:
        return 0.5 + 0.1 * rows_read + 0.02 * rows_read**2

    rows = bench.timed_rows(20, 3)
    assert rows == [0, 10, 19]
    total = bench.extrapolate_reference(rows, [cost(r + 1) for r in rows], (20, 86))
    assert total == pytest.approx(86 * sum(cost(r) for r in range(1, 21)))
    assert bench.timed_rows(2, 5) == [0, 1]


# the tiny prior below has no null label: unguided
TINY = ["vocoder.griffinlim.n_iter=1", "autoencoder.channel=8", "sample.per_class=1", "sample.guidance=1",
        "sample.temperature=1"]  # the settings the generation benchmark samples with


def tiny_prior_for(config) -> PixelSNAIL:
    torch.manual_seed(0)
    return PixelSNAIL(config.map_shape, config.autoencoder.quantizer.codebook_size, config.class_count, channel=8,
                      kernel_size=3, n_block=1, n_res_block=1, res_channel=8, attention=True, n_head=2,
                      dropout=0.0, label_hidden=8).eval()


def test_generation_timing_runs_prior_decoder_and_vocoder():
    config = load_config("quick", TINY)
    autoencoder = build_autoencoder(config.autoencoder, (config.mel.n_mels, 344)).eval()
    prior, vocoder = tiny_prior_for(config), build_vocoder(config)
    generated, seconds = bench.time_generation(prior, autoencoder, vocoder, n_classes=2, per_class=1, batch=2,
                                               amp=False, num_samples=config.audio.clip_samples)
    assert np.isfinite(seconds) and seconds > 0
    assert generated.codes.shape == (2, *config.map_shape) and generated.audio.shape == (2, config.audio.clip_samples)
    # what was timed is the whole generator: the same clips as generating them directly with seed 0
    plain = dataclasses.replace(config.sample, best_of=1)  # the bench times plain sampling (the demo samples best of 2)
    direct = generate(prior, autoencoder, vocoder, [0, 1], [0, 0], 0, plain, "freq", config.audio.clip_samples,
                      progress=False)
    np.testing.assert_array_equal(generated.codes, direct.codes)
    np.testing.assert_array_equal(generated.audio, direct.audio)


def test_the_dcase_set_timing_at_toy_size(monkeypatch):
    """The GPU-only path, wired on the CPU with the quick config's shapes and Griffin-Lim in place of HiFi-GAN."""
    config = load_config("quick", TINY)
    monkeypatch.setattr(bench, "load_config", lambda name: config)
    monkeypatch.setattr(bench, "dcase_vocoder", lambda: build_vocoder(config))
    result = bench.time_dcase_set(tiny_prior_for(config), batch=4, amp=False, progress=False)
    assert result["clips"] == config.class_count and result["batch"] == 4 and result["seconds"] > 0
    assert result["vocoder"].startswith("griffinlim") and result["stages"] == "prior + decode + vocode"
