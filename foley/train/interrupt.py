"""Stopping training cleanly on SIGINT or SIGTERM: the loop finishes its step, checkpoints, stops.

While a `StopRequests` is active, the two signals are recorded instead of ending the process.
The training loop asks after every step (summed over ranks, so that all ranks stop after the
same step even when only one was signalled), writes a checkpoint and raises `Interrupted`. A
second signal does not cut the step short; SIGKILL does, and the run then resumes from the last
checkpoint. Python only lets the main thread install handlers; elsewhere signals keep their
usual effect.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

log = logging.getLogger(__name__)
HANDLED = (signal.SIGINT, signal.SIGTERM)


class StopRequests:
    def __init__(self) -> None:
        self.received = {number: 0 for number in HANDLED}
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():
            self._previous = {number: signal.signal(number, self._record) for number in HANDLED}
        return self

    def __exit__(self, *exc: object) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}

    def _record(self, number: int, frame: FrameType | None) -> None:
        if not any(self.received.values()):
            log.warning("%s received: finishing this step, then writing a checkpoint", signal.Signals(number).name)
        self.received[number] += 1

    def counts(self) -> list[float]:
        """How often each handled signal arrived here, in HANDLED order (summed over ranks by the loop)."""
        return [float(self.received[number]) for number in HANDLED]


def agreed_signal(counts: list[float]) -> int | None:
    """The signal to stop for, given counts summed over ranks: SIGINT before SIGTERM; None: go on."""
    for number, count in zip(HANDLED, counts):
        if count > 0:
            return int(number)
    return None
