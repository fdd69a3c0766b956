"""`foley run` stopped by signals and run on several processes (`--nproc`), through the command."""

import csv
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time

import pytest

from foley.models.builders import load_autoencoder, load_prior
from foley.stages import STAGE_NAMES
from foley.stages.commands.launch import Launch, check_nproc, from_environment, resume_command, without_option
from foley.util.checkpoint import load_checkpoint
from foley.util.errors import RunError

ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}  # on a few shared cores, more threads only spin
STOPPED = re.compile(r"foley: train_vqvae stopped by (SIG\w+) after step (\d+); checkpoint written to '(.+)'\. Resume with: (.+)")


def _sets(overrides):
    return [item for o in overrides for item in ("--set", o)]


def _start(args, run):
    """Start `foley run` and wait until train_vqvae has finished its first epoch."""
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ONE_THREAD)
    deadline = time.time() + 120
    while not (run / "train_vqvae" / "metrics.csv").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "training ended before it could be signalled"
    return proc


def _stopped(proc, number, run):
    """Send `number`, wait, check the one message; returns (step, resume command)."""
    proc.send_signal(number)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + number, stderr
    found = [m for m in map(STOPPED.fullmatch, stderr.splitlines()) if m]
    assert len(found) == 1, stderr
    name, step, checkpoint, resume = found[0].groups()
    assert name == signal.Signals(number).name and checkpoint == str(run / "train_vqvae" / "checkpoint.pt")
    assert load_checkpoint(checkpoint)["step"] == int(step)  # written at the step reached
    assert not (run / "train_vqvae" / "vqvae.pt").exists()
    return int(step), resume


def test_sigint_checkpoints_the_step_reached_and_the_next_run_resumes_from_it(tmp_path, toy_overrides):
    run = tmp_path / "run"
    settings = toy_overrides + ["autoencoder.train.epochs=8", "autoencoder.train.batch_size=2"]
    argv = ["run", "--quiet", "--out", str(run), "--stages", "prepare,train_vqvae", *_sets(settings)]
    step, resume = _stopped(_start([sys.executable, "-m", "foley", *argv], run), signal.SIGINT, run)
    assert resume == resume_command(argv, None)

    again = subprocess.run([sys.executable, "-m", "foley", *argv], capture_output=True, text=True, timeout=300, env=ONE_THREAD)
    assert again.returncode == 0, again.stderr
    log = (run / "log.txt").read_text()
    assert f"train_vqvae: resuming from {run / 'train_vqvae' / 'checkpoint.pt'} (epoch" in log and f"step {step})" in log
    assert [int(r["epoch"]) for r in csv.DictReader(open(run / "train_vqvae" / "metrics.csv"))] == list(range(1, 9))
    assert load_autoencoder(run / "train_vqvae" / "vqvae.pt")[0].levels == 2


def test_nproc_2_runs_the_pipeline_survives_sigterm_and_resumes(tmp_path, toy_overrides):
    """The toy pipeline on 2 gloo processes: stopped by SIGTERM to `foley run --nproc 2` (torchrun
    forwards it), then the printed command finishes it."""
    run = tmp_path / "run"
    argv = ["run", "--nproc", "2", "--quiet", "--out", str(run), *_sets(toy_overrides + ["autoencoder.train.epochs=12"])]
    _, resume = _stopped(_start([sys.executable, "-m", "foley", *argv], run), signal.SIGTERM, run)
    assert resume == shlex.join(["foley", *argv])  # as typed, --nproc included

    again = subprocess.run([sys.executable, "-m", "foley", *argv], capture_output=True, text=True, timeout=300, env=ONE_THREAD)
    assert again.returncode == 0, again.stderr
    assert "train_vqvae: resuming from" in (run / "log.txt").read_text()
    for stage in STAGE_NAMES:
        assert json.loads((run / stage / "manifest.json").read_text())["status"] == "complete"
    assert load_autoencoder(run / "train_vqvae" / "vqvae.pt")[0].levels == 2 and load_prior(run / "train_prior" / "prior.pt")
    assert not list(run.glob("train_*/checkpoint.pt*"))
    log = (run / "log.txt").read_text()
    assert log.count("device cpu, 2 processes") == 2  # rank 0 alone writes the log, once per run
    assert len(list((run / "sample" / "samples" / "rain").glob("*.wav"))) == 2


def test_torchrun_variables_and_the_resume_command():
    assert from_environment({}) is None
    launch = from_environment({"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "4"})
    assert launch == Launch(1, 4, 1, 4) and launch.nodes == 1
    with pytest.raises(RunError, match="whole numbers"):
        from_environment({"RANK": "x", "WORLD_SIZE": "2"})
    argv = ["run", "--out", "runs/a b", "--set", "seed=3"]
    assert resume_command(argv, None) == "foley run --out 'runs/a b' --set seed=3"
    assert resume_command(argv, launch, {}) == "torchrun --nproc_per_node 4 -m foley run --out 'runs/a b' --set seed=3"
    assert resume_command(argv, launch, {"FOLEY_RESUME_COMMAND": "foley run --nproc 4"}) == "foley run --nproc 4"
    assert "--nnodes 2" in resume_command(argv, Launch(5, 8, 1, 4), {})


def test_nproc_is_removed_for_torchrun_in_every_spelling_and_checked():
    for spelled in (["--nproc", "2"], ["--nproc=2"], ["--np", "2"]):
        assert without_option(["run", *spelled, "--out", "x"], "--nproc") == ["run", "--out", "x"]
    check_nproc(None, None, cuda=False, gpus=0)
    check_nproc(8, None, cuda=False, gpus=0)  # CPU processes: as many as asked
    with pytest.raises(RunError, match="needs 4 GPUs .* this machine has 2"):
        check_nproc(4, None, cuda=True, gpus=2)
    with pytest.raises(RunError, match="--nproc 2 but torchrun started 4 processes"):
        check_nproc(2, Launch(0, 4, 0, 4), cuda=False, gpus=0)
    with pytest.raises(RunError, match="at least 1"):
        check_nproc(0, None, cuda=False, gpus=0)
