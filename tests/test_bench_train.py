"""`foley bench train`: its report and JSON at toy size, the memory sampler, argument errors."""

from __future__ import annotations

import json
import time

import pytest
import torch

from foley.stages.commands import training_speed
from foley.stages.commands.cli import main
from foley.util import device

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TOY_PRIOR = dict(channel=8, kernel_size=5, n_block=1, n_res_block=1, res_channel=8, attention=True, n_head=2,
                 dropout=0.1, label_hidden=8)


@pytest.fixture
def toy_sizes(monkeypatch):
    """'small' made tiny, for both models: the bench's logic, not its timings."""
    monkeypatch.setitem(training_speed.PRIOR_SIZES, "small", TOY_PRIOR)
    monkeypatch.setattr(training_speed, "DCASE_MAP", (4, 6))
    monkeypatch.setattr(training_speed, "AUTOENCODER_CONFIGS", {"small": "toy"})


@pytest.mark.parametrize("model", ["prior", "autoencoder"])
def test_bench_train_json_reports_both_paths(capsys, toy_sizes, model):
    assert main(["bench", "train", "--model", model, "--size", "small", "--batch", "2", "--steps", "2",
                 "--device", "cpu", "--json", "-q"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model"] == model and result["batch"] == 2 and result["steps"] == 2 and result["device"] == "cpu"
    for path in ("reference", "fast"):
        timing = result[path]
        assert timing["step_s"] > 0 and timing["clips_per_s"] == pytest.approx(2 / timing["step_s"])
        assert len(timing["losses"]) == 2 and all(loss > 0 for loss in timing["losses"])
        assert result["epoch_s"][path] == pytest.approx(2425 * timing["step_s"])  # 4,850 clips in steps of 2
        assert result["total_h"][path] == pytest.approx(result["epoch_s"][path] * result["epochs"] / 3600)
    assert result["ratio"] == pytest.approx(result["reference"]["step_s"] / result["fast"]["step_s"])
    assert result["epochs"] == (1500 if model == "prior" else 800)


def test_the_text_report_has_both_paths_the_ratio_and_the_load(capsys, toy_sizes):
    assert main(["bench", "train", "--size", "small", "--steps", "1", "--device", "cpu", "-q"]) == 0
    out = capsys.readouterr().out
    for text in ("reference", "fast", "x faster per step", "load average", "1500 epochs", "peak memory:"):
        assert text in out


def test_dropout_sets_the_priors_dropout(capsys, toy_sizes):
    """--dropout replaces the size's dropout (0.1): at 0 both paths compute the same function, so
    their losses agree; at the default the two paths draw different dropout masks."""
    results = {}
    for flags in ((), ("--dropout", "0")):
        assert main(["bench", "train", "--batch", "2", "--steps", "2", "--device", "cpu", "--json", "-q", *flags]) == 0
        results[flags] = json.loads(capsys.readouterr().out)
    default, off = results[()], results[("--dropout", "0")]
    assert default["dropout"] == 0.1 and off["dropout"] == 0.0
    assert off["fast"]["losses"] == pytest.approx(off["reference"]["losses"], rel=1e-5)
    assert default["fast"]["losses"] != pytest.approx(default["reference"]["losses"], rel=1e-5)
    assert main(["bench", "train", "--dropout", "0", "--steps", "1", "--device", "cpu", "-q"]) == 0
    assert "small size, dropout 0, batch 2" in capsys.readouterr().out


def test_amp_runs_the_fast_path_in_bf16_against_the_float32_reference(capsys, toy_sizes, monkeypatch):
    """--amp is config amp for the fast path only: the reference's losses are a float32 run's."""
    monkeypatch.setattr(device, "cpu_has_bf16", lambda: True)
    results = {}
    for flags in ((), ("--amp",)):
        assert main(["bench", "train", "--model", "autoencoder", "--size", "small", "--batch", "2", "--steps", "2",
                     "--device", "cpu", "--json", "-q", *flags]) == 0
        results[flags] = json.loads(capsys.readouterr().out)
    plain, amp = results[()], results[("--amp",)]
    assert amp["amp"] and not plain["amp"]
    assert amp["reference"]["losses"] == plain["reference"]["losses"]
    assert amp["fast"]["losses"] != plain["fast"]["losses"]
    assert amp["fast"]["losses"] == pytest.approx(plain["fast"]["losses"], rel=2e-2)


def test_resident_peak_sees_a_large_allocation():
    if not training_speed.STATM.exists():
        pytest.skip("no /proc/self/statm on this system")
    with training_speed.ResidentPeak() as sampler:
        block = torch.ones(64 * 2**20 // 4)  # 64 MiB, written
        time.sleep(0.01)
    assert block.sum() > 0 and sampler.peak_mib >= 60


@pytest.mark.parametrize("args,message", [
    (["--batch", "0"], "--batch must be at least 1"),
    (["--steps", "0"], "--steps must be at least 1"),
    (["--threads", "0"], "--threads must be at least 1"),
    (["--dropout", "1"], "--dropout must be in [0, 1)"),
    (["--model", "autoencoder", "--dropout", "0"], "is the prior's only"),
])
def test_bad_arguments_fail_with_one_message(capsys, args, message):
    assert main(["bench", "train", *args]) == 2
    assert message in capsys.readouterr().err
