"""Learning-rate schedules: the factor at each step, the rate Adam actually uses, exact resumption."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch.utils.data import TensorDataset

from foley.config import LR_SCHEDULES, TrainConfig, load_config
from foley.train.loop import LoopPlan, fit
from foley.train.schedule import SCHEDULES, lr_factor, planned, schedule_for
from foley.train.tasks import AdamTask
from foley.util.errors import ConfigError


def test_constant_with_and_without_warm_up():
    assert [lr_factor("constant", 10)(s) for s in range(10)] == [1.0] * 10
    assert [lr_factor("constant", 10, 4)(s) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_cosine_warms_up_then_falls_to_zero_at_the_last_step():
    total, warm = 20, 5
    factor = lr_factor("cosine", total, warm)
    for step in range(total):
        expected = (step + 1) / warm if step < warm else (1 + math.cos(math.pi * (step - warm) / (total - warm))) / 2
        assert factor(step) == pytest.approx(expected)
    assert factor(total) == pytest.approx(0.0) and factor(warm) == 1.0


def test_the_config_names_the_schedules_there_are():
    assert LR_SCHEDULES == SCHEDULES
    with pytest.raises(ValueError, match="schedules: constant, cosine"):
        lr_factor("linear", 10)
    config = load_config("quick", ["autoencoder.train.schedule=constant", "prior.train.schedule=cosine",
                                   "prior.train.warmup_steps=30"])
    assert schedule_for(config.autoencoder.train, 100) is None
    factor = schedule_for(config.prior.train, 70)  # 5 batches of 16 (the last takes 6) per epoch
    assert factor(29) == 1.0 and factor(config.prior.train.epochs * 5) == pytest.approx(0.0)


class Regression(AdamTask):
    def losses(self, batch, network):
        x, y = batch
        return {"loss": ((network(x) - y) ** 2).mean()}

    def train_step(self, batch, share):
        self.rates.append(self.optimizer.param_groups[0]["lr"])
        return super().train_step(batch, share)


def _task(train: TrainConfig) -> Regression:
    torch.manual_seed(0)
    task = Regression(torch.nn.Linear(3, 1), train.lr, torch.device("cpu"), lr_factor=schedule_for(train, 23))
    task.rates = []
    return task


def _plan(folder, train):
    return LoopPlan(train=train, seed=1, checkpoint_path=folder / "checkpoint.pt", metrics_path=folder / "m.csv",
                    checkpoint_header={"format": "foley-checkpoint", "version": 1, "kind": "t", "model_config": {}},
                    progress=False)


def test_adam_uses_the_scheduled_rate_and_a_resumed_run_continues_it(tmp_path):
    train = TrainConfig(epochs=3, batch_size=5, lr=0.1, checkpoint_every=0, num_workers=0, schedule="cosine",
                        warmup_steps=3)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(23, 3, generator=g)
    data = TensorDataset(x, x.sum(1, keepdim=True))
    whole = _task(train)
    fit(whole, data, _plan(tmp_path / "whole", train))
    factor = lr_factor("cosine", 15, 3)
    assert whole.rates == pytest.approx([0.1 * factor(s) for s in range(15)])

    first_epoch = TrainConfig(1, 5, 0.1, 0, 0, "cosine", 3)
    fit(_task(train), data, _plan(tmp_path / "split", first_epoch))  # stopped after one of the three epochs
    resumed = _task(train)
    fit(resumed, data, _plan(tmp_path / "split", train))
    assert resumed.rates == pytest.approx(whole.rates[5:])
    assert torch.equal(resumed.model.weight, whole.model.weight)


def test_steps_train_the_fewest_whole_epochs_that_reach_them_on_any_data_size():
    base = load_config("quick").prior.train
    assert planned(dataclasses.replace(base, steps=0), 1000) == dataclasses.replace(base, steps=0)
    section = dataclasses.replace(base, steps=1100, batch_size=16, epochs=10_000)
    for examples, epochs in ((1260, 14), (1264, 14), (334, 53), (16, 1100), (20000, 1)):
        got = planned(section, examples)
        per_epoch = math.ceil(examples / 16)
        assert got.epochs == epochs
        assert (got.epochs - 1) * per_epoch < 1100 <= got.epochs * per_epoch or got.epochs == 1
        assert dataclasses.replace(got, epochs=section.epochs) == section  # only epochs changes
    capped = dataclasses.replace(section, epochs=20)  # epochs caps the steps' epochs on a small set
    assert [planned(capped, n).epochs for n in (1260, 334, 16)] == [14, 20, 20]
    with pytest.raises(ConfigError, match="steps"):
        load_config("quick", ["prior.train.steps=-1"])
