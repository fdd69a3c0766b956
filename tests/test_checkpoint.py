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


def test_a_full_disk_ends_in_one_message_and_keeps_the_old_file(tmp_path, monkeypatch):
    """torch.save on a full disk fails with its zip writer's RuntimeError (seen here: 19 MB free while
    a prior checkpoint was written); with that little free space it becomes one DiskFullError. The same
    RuntimeError with room to spare is a different fault and passes through unchanged."""
    import shutil
    from collections import namedtuple

    import foley.util.atomic
    from foley.util.errors import DiskFullError

    path = tmp_path / "prior.pt"
    save_checkpoint(path, _payload(1))
    before = path.read_bytes()

    def zip_writer_fails(payload, target):
        with open(target, "wb") as handle:
            handle.write(before[:100])
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 19070144 vs 19070032")

    monkeypatch.setattr(foley.util.checkpoint.torch, "save", zip_writer_fails)
    usage, real_disk_usage = namedtuple("usage", "total used free"), shutil.disk_usage
    monkeypatch.setattr(foley.util.atomic.shutil, "disk_usage", lambda folder: usage(1 << 40, 1 << 40, 19 << 20))
    with pytest.raises(DiskFullError, match=rf"no space left on the disk holding '{tmp_path}' \(19 MiB free\) while "
                                            r"writing 'prior.pt'.*run the same command again"):
        save_checkpoint(path, _payload(2))
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["prior.pt"]
    monkeypatch.setattr(foley.util.atomic.shutil, "disk_usage", real_disk_usage)
    with pytest.raises(RuntimeError, match="unexpected pos"):
        save_checkpoint(path, _payload(2))


def test_enospc_while_streaming_rows_is_a_full_disk_at_any_free_space(tmp_path):
    import errno

    import numpy as np

    from foley.util.atomic import npy_rows_atomic
    from foley.util.errors import DiskFullError

    with pytest.raises(DiskFullError, match="while writing 'mels.npy'"):
        with npy_rows_atomic(tmp_path / "mels.npy", (2,)) as rows:
            rows.append(np.zeros((3, 2)))
            raise OSError(errno.ENOSPC, "No space left on device")
    assert list(tmp_path.iterdir()) == []
