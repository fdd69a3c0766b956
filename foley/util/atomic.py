"""Atomic file writes: a temporary file beside the target, then a rename over it.

A reader never sees a half-written file, a killed writer leaves the previous file in place, and
concurrent writers of the same content (two runs filling one cache) each rename a complete file.
A write that fails because the disk is full ends in one DiskFullError naming the folder.
"""

from __future__ import annotations

import csv
import errno
import io
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from foley.util.errors import DiskFullError

FULL_BELOW_BYTES = 64 << 20  # a failed write with less free space than this is taken for a full disk


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it is fsynced and renamed over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:  # RuntimeError: how torch.save's zip writer reports a failed write
        free = disk_full(err, path.parent)
        if free is None:
            raise
        raise DiskFullError(
            f"no space left on the disk holding '{path.parent}' ({free >> 20} MiB free) while writing "
            f"'{path.name}'; nothing half-written was kept: free some space and run the same command again "
            f"(a run resumes from its finished stages and last checkpoint)") from err
    finally:
        tmp.unlink(missing_ok=True)


def disk_full(err: BaseException, folder: Path) -> int | None:
    """The free bytes of `folder`'s disk when `err` is a write that failed for lack of space, else None."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return None
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return free
    return free if free < FULL_BELOW_BYTES else None


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def save_npz_atomic(path: str | Path, **arrays: np.ndarray) -> None:
    """np.savez, atomically; arrays must not need pickling (strings and numbers only)."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_bytes_atomic(path, buffer.getvalue())


def save_npy_atomic(path: str | Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, array, allow_pickle=False)


NPY_HEADER_BYTES = 128  # a version 1.0 .npy header padded to this length, so the final shape can be written over it


def npy_header(shape: tuple[int, ...], dtype: np.dtype) -> bytes:
    """A .npy version 1.0 header of NPY_HEADER_BYTES for a C-ordered array of this shape and dtype."""
    text = repr({"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": tuple(shape)})
    body = text.encode("latin1").ljust(NPY_HEADER_BYTES - 11) + b"\n"
    if len(body) != NPY_HEADER_BYTES - 10:
        raise ValueError(f"array description too long for a {NPY_HEADER_BYTES}-byte .npy header: {text}")
    return b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little") + body


class NpyRows:
    """Rows appended to an open .npy file whose header is rewritten with the final row count."""

    def __init__(self, handle: io.BufferedWriter, row_shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.handle, self.row_shape, self.dtype, self.rows = handle, tuple(row_shape), np.dtype(dtype), 0

    def append(self, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if rows.shape[1:] != self.row_shape:
            raise ValueError(f"rows of shape {rows.shape[1:]} appended to an array of rows {self.row_shape}")
        self.handle.write(rows.tobytes())
        self.rows += rows.shape[0]


@contextmanager
def npy_rows_atomic(path: str | Path, row_shape: tuple[int, ...], dtype: np.dtype = np.float32) -> Iterator[NpyRows]:
    """Stream rows into `path` as one .npy array (rows, *row_shape), written atomically: memory holds
    only what the caller appends at a time."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(npy_header((0, *row_shape), dtype))
            writer = NpyRows(handle, row_shape, dtype)
            yield writer
            handle.seek(0)
            handle.write(npy_header((writer.rows, *row_shape), dtype))


def write_csv(path: str | Path, fields: Sequence[str], rows: Sequence[dict]) -> None:
    """A CSV with a header row, atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(fields))
        writer.writeheader()
        writer.writerows(rows)
