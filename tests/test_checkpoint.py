"""Checkpoint files survive faults: a failed write replaces nothing, a bad newest file falls back."""

import logging

import pytest
import torch

import foley.util.checkpoint
from foley.util.checkpoint import (
    checkpoint_header,
    load_checkpoint,
    load_newest_checkpoint,
    previous_path,
    remove_checkpoint,
    save_checkpoint,
)
from foley.util.errors import CheckpointError


def _payload(step: int) -> dict:
    return {**checkpoint_header("test", {}), "step": step, "weights": torch.full((4,), float(step))}


def test_a_write_that_dies_inside_torch_save_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, _payload(1), keep_previous=True)
    before = path.read_bytes()

    def dies_halfway(payload, target):
        with open(target, "wb") as handle:
            handle.write(before[: len(before) // 2])
        raise OSError("No space left on device")

    monkeypatch.setattr(foley.util.checkpoint.torch, "save", dies_halfway)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(path, _payload(2), keep_previous=True)
    assert path.read_bytes() == before and load_checkpoint(path)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]  # no temporary file, nothing rotated


def test_the_replaced_checkpoint_is_kept_as_prev_and_removed_with_it(tmp_path):
    path = tmp_path / "checkpoint.pt"
    for step in (1, 2, 3):
        save_checkpoint(path, _payload(step), keep_previous=True)
    assert load_checkpoint(path)["step"] == 3 and load_checkpoint(previous_path(path))["step"] == 2
    remove_checkpoint(path)
    assert list(tmp_path.iterdir()) == []
    assert load_newest_checkpoint(path) is None


@pytest.mark.parametrize("damage", ["truncated", "garbage", "missing"])
def test_a_bad_newest_checkpoint_falls_back_to_the_previous_with_a_warning(tmp_path, caplog, damage):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, _payload(1), keep_previous=True)
    save_checkpoint(path, _payload(2), keep_previous=True)
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    elif damage == "garbage":
        path.write_bytes(b"\0" * 500)
    else:
        path.unlink()  # killed between the two renames
    with caplog.at_level(logging.WARNING):
        state = load_newest_checkpoint(path, kind="test")
    assert state["step"] == 1 and torch.equal(state["weights"], torch.ones(4))
    assert f"using the previous checkpoint '{previous_path(path)}'" in caplog.text
    if damage != "missing":
        assert f"checkpoint '{path}' is corrupt, truncated" in caplog.text


def test_both_checkpoints_bad_is_an_error_naming_both(tmp_path):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"junk")
    previous_path(path).write_bytes(b"junk too")
    with pytest.raises(CheckpointError, match=r"'.*checkpoint.pt' is corrupt.* and .*checkpoint.pt.prev' is corrupt"):
        load_newest_checkpoint(path)
