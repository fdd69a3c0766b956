"""One audio file -> its clips, or the reason it gives none; many files in worker processes.

`ingest` is what a worker runs (it imports no torch): the file's content digest (for duplicates),
then the clip policy (foley.audio.clips). `ingest_all` yields the outcomes in the files' order,
from `workers` spawned processes (0: in this process), keeping a bounded number of files in flight
so memory holds a few files' clips whatever the size of the set.
"""

from __future__ import annotations

import hashlib
import multiprocessing
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from foley.audio.clips import Clip, ClipPolicy, cut_clips, read_recording
from foley.data.layout import Entry
from foley.util.errors import AudioError, DataError

IN_FLIGHT_PER_WORKER = 4
DIGEST_BLOCK = 1 << 20


@dataclass(frozen=True)
class Used:
    clips: tuple[Clip, ...]
    notes: tuple[str, ...]
    digest: str  # SHA-256 of the file's bytes


@dataclass(frozen=True)
class Rejected:
    reason: str


def ingest(path: Path, policy: ClipPolicy) -> Used | Rejected:
    try:
        digest = file_digest(path)
        clips = cut_clips(read_recording(path, policy), policy)
    except AudioError as err:
        return Rejected(str(err))
    return Used(clips.clips, clips.notes, digest)


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(DIGEST_BLOCK), b""):
                digest.update(block)
    except OSError as err:
        raise AudioError(f"unreadable: {err.strerror}") from None
    return digest.hexdigest()


def ingest_all(entries: Sequence[Entry], policy: ClipPolicy, workers: int) -> Iterator[tuple[Entry, Used | Rejected]]:
    """(entry, outcome) for every entry, in order; decoding runs in `workers` processes (0: here)."""
    if workers == 0:
        for entry in entries:
            yield entry, ingest(entry.path, policy)
        return
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        try:
            window: deque = deque()
            for entry in entries:
                window.append((entry, pool.submit(ingest, entry.path, policy)))
                if len(window) >= workers * IN_FLIGHT_PER_WORKER:
                    yield _result(*window.popleft())
            while window:
                yield _result(*window.popleft())
        finally:
            pool.shutdown(cancel_futures=True)


def _result(entry: Entry, future: Future) -> tuple[Entry, Used | Rejected]:
    try:
        return entry, future.result()
    except BrokenProcessPool:
        raise DataError(
            f"prepare: a decoding process died (crashed or was killed, e.g. out of memory) while reading files up to "
            f"'{entry.path}'; run with --set data.num_workers=0 to see which file it was"
        ) from None
