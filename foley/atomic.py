"""Atomic file writes: a temporary file beside the target, then a rename over it.

A reader never sees a half-written file, and concurrent writers of the same content (two runs
filling one cache) each rename a complete file of their own.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def save_npz_atomic(path: str | Path, **arrays: np.ndarray) -> None:
    """np.savez, atomically; arrays must not need pickling (strings and numbers only)."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_bytes_atomic(path, buffer.getvalue())


def save_npy_atomic(path: str | Path, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    write_bytes_atomic(path, buffer.getvalue())
