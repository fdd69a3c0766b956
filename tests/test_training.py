import dataclasses
import logging
import os
import signal

import pytest
import torch
from torch.utils.data import TensorDataset

from foley.config import TrainConfig
from foley.train.batches import BatchShare, EpochBatches, batches_per_epoch, share_of
from foley.train.loop import CheckpointingTask, LoopPlan, LoopState, fit
from foley.util.checkpoint import load_checkpoint, previous_path
from foley.util.errors import Interrupted, RunError


class LinearTask:
    """A tiny regression model with dropout, so the RNG state matters."""

    def __init__(self, fail_at: int | None = None, poison_at: int | None = None, signal_at: int | None = None):
        torch.manual_seed(123)
        self.model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Dropout(0.3), torch.nn.Linear(8, 1))
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-2)
        self.steps, self.fail_at, self.poison_at, self.signal_at = 0, fail_at, poison_at, signal_at

    def train_step(self, batch, share):
        if self.steps == self.fail_at:
            raise KeyboardInterrupt
        if self.steps == self.signal_at:
            os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C would, in the middle of the step
        x, y = batch
        loss = ((self.model(x) - y) ** 2).mean()
        if self.steps == self.poison_at:
            loss = loss * float("nan")
        self.optimizer.zero_grad()
        (loss * share.gradient_scale).backward()
        self.optimizer.step()
        self.steps += 1
        return {"loss": float(loss.detach())}

    def end_epoch(self, epoch):
        return {"lr": self.optimizer.param_groups[0]["lr"]}

    def state_dict(self):
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state):
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])


class FolderTask(LinearTask):
    """LinearTask keeping its own checkpoint file (its own format) in the plan's folder."""

    def save_checkpoint(self, folder, loop):
        folder.mkdir(parents=True, exist_ok=True)
        torch.save({"weights": self.state_dict(), "loop": dataclasses.asdict(loop)}, folder / "own.pt")

    def load_checkpoint(self, folder):
        if not (folder / "own.pt").exists():
            return None
        saved = torch.load(folder / "own.pt", weights_only=True)
        self.load_state_dict(saved["weights"])
        return LoopState(**saved["loop"])


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(37, 3, generator=g)
    return TensorDataset(x, x.sum(1, keepdim=True))


def _plan(tmp_path, epochs=3, every=0):
    return LoopPlan(
        train=TrainConfig(epochs=epochs, batch_size=5, lr=1e-2, checkpoint_every=every, num_workers=0,
                          schedule="constant", warmup_steps=0),
        seed=7, checkpoint_path=tmp_path / "checkpoint.pt", metrics_path=tmp_path / "metrics.csv",
        checkpoint_header={"format": "foley-checkpoint", "version": 1, "kind": "test", "model_config": {}},
        progress=False,
    )


def test_epoch_batches_are_a_reproducible_permutation():
    a = list(EpochBatches(23, 5, seed=1, epoch=2))
    assert sorted(i for batch in a for i in batch) == list(range(23))
    assert a == list(EpochBatches(23, 5, seed=1, epoch=2))
    assert a != list(EpochBatches(23, 5, seed=1, epoch=3))
    assert list(EpochBatches(23, 5, seed=1, epoch=2, start=3)) == a[3:]


def test_ranks_take_consecutive_slices_of_each_global_batch():
    batches = EpochBatches(23, 5, seed=1, epoch=0, min_last=4)
    assert [len(b) for b in batches] == [5, 5, 5, 8]  # the last 3 join the batch before: 4 ranks need 1 each
    assert batches_per_epoch(23, 5, 4) == 4 and batches_per_epoch(23, 5, 3) == 5
    slices = [batches.shards(rank, 4) for rank in range(4)]
    for i, batch in enumerate(batches):
        assert [index for rank in range(4) for index in slices[rank][0][i]] == batch
        shares = [slices[rank][1][i] for rank in range(4)]
        assert sum(s.weight for s in shares) == pytest.approx(1.0)
        assert sum(s.gradient_scale for s in shares) == pytest.approx(4.0)
    assert share_of(5, 0, 1) == BatchShare(0, 5, 5, 1) and share_of(5, 0, 1).gradient_scale == 1.0
    assert [(s.first, s.count) for s in (share_of(7, r, 3) for r in range(3))] == [(0, 3), (3, 2), (5, 2)]


@pytest.mark.parametrize("every, stop_after", [(0, 8), (3, 10), (3, 14)])
def test_resumed_training_reaches_the_same_weights(tmp_path, every, stop_after):
    whole = LinearTask()
    fit(whole, _data(), _plan(tmp_path / "whole", every=every))

    interrupted = LinearTask(fail_at=stop_after)
    with pytest.raises(KeyboardInterrupt):
        fit(interrupted, _data(), _plan(tmp_path / "split", every=every))
    resumed = LinearTask()
    fit(resumed, _data(), _plan(tmp_path / "split", every=every))
    for a, b in zip(whole.model.state_dict().values(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    state = load_checkpoint(tmp_path / "split" / "checkpoint.pt", kind="test")
    assert state["epoch"] == 3 and state["step"] == 24


def test_sigint_finishes_the_step_checkpoints_and_the_run_resumes_exactly(tmp_path):
    whole = LinearTask()
    fit(whole, _data(), _plan(tmp_path / "whole"))
    before = signal.getsignal(signal.SIGINT)  # Python's default, or SIG_IGN under a shell's background job
    pattern = r"train stopped by SIGINT after step 5; checkpoint written to '.*split/checkpoint.pt'"
    with pytest.raises(Interrupted, match=pattern) as stopped:
        fit(LinearTask(signal_at=4), _data(), _plan(tmp_path / "split"))
    assert stopped.value.exit_code == 130 and signal.getsignal(signal.SIGINT) is before  # restored
    state = load_checkpoint(tmp_path / "split" / "checkpoint.pt")
    assert (state["epoch"], state["batch_in_epoch"], state["step"]) == (0, 5, 5)  # mid-epoch, the step reached
    resumed = LinearTask()
    fit(resumed, _data(), _plan(tmp_path / "split"))
    for a, b in zip(whole.model.state_dict().values(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_a_corrupt_latest_checkpoint_resumes_from_the_previous_one(tmp_path, caplog):
    whole = LinearTask()
    fit(whole, _data(), _plan(tmp_path / "whole", every=3))
    with pytest.raises(KeyboardInterrupt):
        fit(LinearTask(fail_at=10), _data(), _plan(tmp_path / "split", every=3))
    latest = tmp_path / "split" / "checkpoint.pt"
    assert load_checkpoint(latest)["step"] == 9 and load_checkpoint(previous_path(latest))["step"] == 8
    latest.write_bytes(latest.read_bytes()[:-200])  # truncated
    resumed = LinearTask()
    with caplog.at_level(logging.INFO):
        fit(resumed, _data(), _plan(tmp_path / "split", every=3))
    assert f"checkpoint '{latest}' is corrupt, truncated" in caplog.text
    assert f"using the previous checkpoint '{previous_path(latest)}'" in caplog.text and "step 8)" in caplog.text
    for a, b in zip(whole.model.state_dict().values(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_a_task_can_own_its_checkpoint_files(tmp_path):
    assert isinstance(FolderTask(), CheckpointingTask) and not isinstance(LinearTask(), CheckpointingTask)
    whole = FolderTask()
    fit(whole, _data(), _plan(tmp_path / "whole", every=3))

    interrupted = FolderTask(fail_at=10)
    plan = dataclasses.replace(_plan(tmp_path / "split", every=3), checkpoint_path=tmp_path / "split" / "own")
    with pytest.raises(KeyboardInterrupt):
        fit(interrupted, _data(), plan)
    assert torch.load(plan.checkpoint_path / "own.pt", weights_only=True)["loop"]["step"] == 9
    resumed = FolderTask()
    fit(resumed, _data(), plan)
    for a, b in zip(whole.model.state_dict().values(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert sorted(p.name for p in (tmp_path / "split").iterdir()) == ["metrics.csv", "own"]


def test_metrics_csv_has_a_row_per_epoch(tmp_path):
    fit(LinearTask(), _data(), _plan(tmp_path))
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert lines[0] == "epoch,step,loss,lr" and len(lines) == 4


def test_non_finite_loss_stops_naming_the_step_and_checkpoint(tmp_path):
    with pytest.raises(RunError, match=r"non-finite loss at step 10; last good checkpoint: .*checkpoint.pt"):
        fit(LinearTask(poison_at=9), _data(), _plan(tmp_path))
