"""train_vqvae says when the autoencoder learned nothing: its reconstruction error against the error of
always answering the average training mel (a run whose first steps blew up ends stuck near a constant
output, and every clip generated from it is one blur or silence)."""

from __future__ import annotations

import json

import torch

from foley.stages.commands.cli import main
from foley.stages.train_vqvae import LEARNED_FRACTION, average_mel_error, learning_check


def test_the_average_mel_error_is_the_error_of_the_training_mean_on_the_validation_mels():
    train = torch.tensor([[[0.0, 2.0]], [[2.0, 4.0]]])  # mean mel [[1, 3]]
    val = torch.tensor([[[1.0, 5.0]]])
    assert average_mel_error(train, val) == 2.0  # (0 + 4) / 2
    assert average_mel_error(train, val[:0]) == 1.0  # no validation mels: on the training mels


def test_a_stuck_autoencoder_is_named_with_its_figures_and_the_fixes():
    """The figures of a real-recordings run that collapsed (validation MSE 10.9 against 7.65) and of the
    same run with a 50-step warm-up (0.121)."""
    stuck = learning_check({"recon/mse": 10.33, "val/recon/mse": 10.91}, 7.65, 25)
    assert not stuck["learned"] and stuck["average_mel_mse"] == 7.65
    assert "did not learn: after 25 epochs its reconstruction MSE is 10.9, against 7.65" in stuck["warning"]
    assert "autoencoder.train.warmup_steps" in stuck["warning"]
    healthy = learning_check({"recon/mse": 0.137, "val/recon/mse": 0.121}, 7.65, 25)
    assert healthy["learned"] and healthy["warning"] is None
    assert learning_check({"recon/mse": 4.0}, 7.65, 1)["warning"].startswith("the autoencoder did not learn: after 1 epoch ")
    assert learning_check({"recon/mse": 0.49 * 7.65}, 7.65, 3)["learned"] and LEARNED_FRACTION == 0.5


def test_a_run_whose_autoencoder_learned_nothing_warns_and_records_it(tmp_path, toy_overrides, capsys, one_torch_thread):
    overrides = [*toy_overrides, "autoencoder.train.lr=1e-6"]  # learns nothing: stays near its first output
    args = ["run", "--quiet", "--out", str(tmp_path / "run"), "--stages", "prepare,train_vqvae"]
    assert main([*args, *[a for o in overrides for a in ("--set", o)]]) == 0
    assert "train_vqvae: the autoencoder did not learn: after 2 epochs" in capsys.readouterr().err
    details = json.loads((tmp_path / "run" / "train_vqvae" / "manifest.json").read_text())["details"]
    assert details["learned"] is False and details["average_mel_mse"] > 0


def test_every_run_records_the_check(toy_run):
    details = json.loads((toy_run / "train_vqvae" / "manifest.json").read_text())["details"]
    mse = details["final"]["val/recon/mse"]
    assert details["learned"] == (mse < LEARNED_FRACTION * details["average_mel_mse"])
