"""`foley gpu-check`: its plan per machine, the reduced check end to end on the CPU at toy sizes
(the code path a GPU machine runs), its summary files, and its argument errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from foley.stages.commands import device_check, training_speed
from foley.stages.commands.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TOY_PRIOR = dict(channel=8, kernel_size=5, n_block=1, n_res_block=1, res_channel=8, attention=True, n_head=2,
                 dropout=0.1, label_hidden=8)


def names(steps, status=None):
    return [s.name for s in steps if status is None or (s.skip is None) == (status == "runs")]


def test_the_gpu_plan_times_the_baseline_sizes_and_runs_nccl_only_with_two_gpus(tmp_path):
    two = device_check.check_plan("cuda", 2, False, Path("tests"), tmp_path)
    assert names(two) == list(device_check.STEP_NAMES) and names(two, "runs") == names(two)
    commands = {s.name: " ".join(s.command) for s in two}
    assert "--size baseline" in commands["sample"] and "--dcase-set on" in commands["sample"]
    assert "--size baseline --batch 16" in commands["train prior"] and "--compile" in commands["train prior compile"]
    assert "--nproc 2 --device cuda" in commands["nccl"]
    assert device_check.run_check(two[:1], skip={"tests"})[0].command == (
        "FOLEY_TEST_DEVICE=cuda python -m pytest -q -n 0 -m device -p no:cacheprovider tests")
    one = device_check.check_plan("cuda", 1, False, None, tmp_path)
    skipped = {s.name: s.skip for s in one if s.skip}
    assert skipped == {"tests": "no tests/ folder: run from a checkout of foley or pass --tests",
                       "nccl": "needs 2 GPUs, this machine has 1"}


def test_the_reduced_check_runs_every_step_on_the_cpu_and_writes_its_summary(tmp_path, monkeypatch):
    monkeypatch.setitem(training_speed.PRIOR_SIZES, "small", TOY_PRIOR)  # the same dict bench sample reads
    monkeypatch.setattr(training_speed, "DCASE_MAP", (4, 6))
    monkeypatch.setattr(training_speed, "AUTOENCODER_CONFIGS", {"small": "toy"})
    steps = device_check.check_plan("cpu", 0, True, Path("tests"), tmp_path)
    steps[0] = dataclasses.replace(steps[0], command=("python", "-c", "import os; print(os.environ['FOLEY_TEST_DEVICE'])"))
    results = device_check.run_check(steps, skip={"vocoder", "fad"})  # each a few seconds of HiFi-GAN / VGGish here
    status = {r.name: r.status for r in results}
    skipped = ("train prior compile", "vocoder", "fad", "nccl")
    assert status == {name: "skipped" if name in skipped else "passed" for name in device_check.STEP_NAMES}, results
    by_name = {r.name: r for r in results}
    assert by_name["tests"].output == "cpu"
    assert by_name["train prior"].output["fast"]["step_s"] > 0 and by_name["train prior tf32"].output["tf32"] is True
    assert by_name["sample"].output["maps_identical"] is True
    json_path, markdown_path = device_check.write_summary(tmp_path, device_check.machine(), results)
    summary = json.loads(json_path.read_text())
    assert [s["name"] for s in summary["steps"]] == list(device_check.STEP_NAMES)
    text = markdown_path.read_text()
    assert "| train prior | passed |" in text and "x); peak" in text and "| nccl | skipped |" in text
    assert "`FOLEY_TEST_DEVICE=cpu python -c" in text and "## tests\n\n```\ncpu\n```" in text


def test_a_failing_step_is_recorded_and_the_next_one_runs(tmp_path):
    steps = [device_check.Step("bad", ("foley", "bench", "train", "--batch", "0")),
             device_check.Step("crash", ("python", "-c", "raise SystemExit(3)")),
             device_check.Step("json", ("python", "-c", "print('not json')"), json_output=True)]
    seen = []
    results = device_check.run_check(steps, after_step=lambda so_far: seen.append([r.name for r in so_far]))
    assert [r.status for r in results] == ["failed"] * 3
    assert seen == [["bad"], ["bad", "crash"], ["bad", "crash", "json"]]
    assert "--batch must be at least 1" in results[0].note and results[1].note == "exit status 3"
    assert results[2].note.startswith("expected one JSON object")


def test_gpu_check_writes_its_summary_and_a_progress_line_after_every_step(capsys, tmp_path):
    assert main(["gpu-check", "--reduced", "--out", str(tmp_path), "--skip", ",".join(device_check.STEP_NAMES)]) == 0
    progress = [line for line in capsys.readouterr().err.splitlines() if line.startswith("gpu-check ")]
    assert progress[0].startswith("gpu-check 1/10 tests: skipped (0.0 s) left out (--skip)"), progress
    assert len(progress) == 10 and progress[-1].startswith("gpu-check 10/10 nccl: skipped")
    summary = json.loads((tmp_path / "device-check.json").read_text())
    assert [s["status"] for s in summary["steps"]] == ["skipped"] * 10


def test_gpu_check_refuses_a_machine_without_gpu_and_unknown_steps(capsys, tmp_path):
    assert main(["gpu-check", "--out", str(tmp_path), "--skip", "nccl"]) == 2
    assert "torch sees none; `foley gpu-check --reduced`" in capsys.readouterr().err
    assert main(["gpu-check", "--reduced", "--skip", "tests,speed"]) == 2
    assert "--skip: no step speed; steps: tests, sample" in capsys.readouterr().err
