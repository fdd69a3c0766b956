"""`foley bench train`: the reference and the fast training step, timed in one process.

Both paths are the trainers' own tasks (``PriorTask`` / ``AutoencoderTask`` with ``fast_path``
off and on) on two copies of one randomly initialised model, stepping on the same random batch;
their timed steps alternate (reference, fast, reference, ...) after two untimed steps each, so a
change in the machine's load hits both alike. Reported per path: the median step in wall-clock
and in CPU time (this process's, all threads), steps and clips per second, and the peak memory
of a step, measured in the second untimed step (the first allocates the optimiser's state): on
CUDA torch's peak allocation, elsewhere the peak of the process's resident memory above its
level when the step began (after glibc's malloc_trim hands memory freed by earlier steps back,
which the timed steps are spared), sampled every millisecond from /proc/self/statm (None where
that file does not exist). Scale: the DCASE development set (4,850 clips) for the epochs the dcase_baseline config
trains (prior 1,500, autoencoder 800). ``amp`` and ``compile`` change the fast path only: the
reference stays the float32 definition, so the ratio is what they gain over it.
"""

from __future__ import annotations

import copy
import ctypes
import math
import os
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from foley.config import load_config
from foley.models.builders import build_autoencoder
from foley.models.pixelsnail import PixelSNAIL
from foley.stages.commands.bench_sizes import DCASE_MAP, N_CLASSES, PRIOR_SIZES, VOCAB_SIZE
from foley.train.batches import BatchShare
from foley.train.tasks import AdamTask, AutoencoderTask, PriorTask
from foley.util.device import synchronize
from foley.util.device import tf32 as tf32_products
from foley.util.shapes import mel_frames

DCASE_CLIPS = 4850  # the DCASE 2023 Task 7 development set
AUTOENCODER_CONFIGS = {"small": "quick", "baseline": "dcase_baseline"}  # each size's autoencoder section
DEFAULT_BATCH = {"prior": 2, "autoencoder": 16}
LEARNING_RATE = 3e-4
MIB = 2**20
STATM = Path("/proc/self/statm")


@dataclass
class PathTiming:
    step_s: float  # median wall-clock seconds per step
    cpu_s: float  # median CPU seconds per step (this process, all threads)
    steps_per_s: float
    clips_per_s: float
    peak_mib: float | None
    losses: list[float]


@dataclass
class TrainBench:
    model: str
    size: str
    dropout: float | None  # the prior's dropout (None for the autoencoder)
    batch: int
    device: str
    threads: int
    amp: bool  # the fast path under bf16 autocast (asked for, and the device computes bf16 natively)
    compile: bool
    tf32: bool
    steps: int
    load_average: tuple[float, float]  # 1-minute load before and after
    memory: str  # what peak_mib measures
    reference: PathTiming
    fast: PathTiming
    ratio: float  # reference / fast, median wall-clock step
    cpu_ratio: float  # the same in CPU time
    epochs: int  # the dcase_baseline config's epochs for this model
    epoch_s: dict[str, float]  # per path: seconds per epoch of DCASE_CLIPS
    total_h: dict[str, float]  # per path: hours for all epochs

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def bench_train(model: str, size: str, batch: int | None = None, steps: int = 3, device: torch.device = torch.device("cpu"),
                amp: bool = False, compile: bool = False, tf32: bool = False, seed: int = 0,
                dropout: float | None = None) -> TrainBench:
    """Time ``steps`` training steps of each path (see the module docstring); ``tf32``: both paths
    with TF32 products on CUDA, as the trainers run with train_speed.tf32; ``amp`` (config amp)
    and ``compile``: the fast path only, against the float32 reference; ``dropout``: the prior's
    (default the size's)."""
    batch = batch or DEFAULT_BATCH[model]
    if model == "prior" and dropout is None:
        dropout = PRIOR_SIZES[size]["dropout"]
    load_before = os.getloadavg()[0]
    tasks, data, epochs = _build(model, size, batch, device, amp, compile, seed, dropout)
    share = BatchShare(0, batch, batch)
    records: dict[str, list[tuple[float, float, float]]] = {name: [] for name in tasks}
    with tf32_products(device, tf32):
        for task in tasks.values():  # untimed: first-call allocations, optimiser state (and compilation)
            task.train_step(data, share)
        peaks = {name: peak_memory(lambda task=task: task.train_step(data, share), device) for name, task in tasks.items()}
        for _ in range(steps):
            for name, task in tasks.items():
                records[name].append(_timed_step(lambda task=task: task.train_step(data, share), device))
    timings = {name: _summary(rows, peaks[name], batch) for name, rows in records.items()}
    per_epoch = math.ceil(DCASE_CLIPS / batch)
    epoch_s = {name: per_epoch * t.step_s for name, t in timings.items()}
    return TrainBench(
        model=model, size=size, dropout=dropout if model == "prior" else None, batch=batch, device=str(device),
        threads=torch.get_num_threads(), amp=tasks["fast"].amp,
        compile=compile, tf32=tf32, steps=steps, load_average=(load_before, os.getloadavg()[0]), memory=memory_measure(device),
        reference=timings["reference"], fast=timings["fast"],
        ratio=timings["reference"].step_s / timings["fast"].step_s,
        cpu_ratio=timings["reference"].cpu_s / timings["fast"].cpu_s,
        epochs=epochs, epoch_s=epoch_s, total_h={name: s * epochs / 3600 for name, s in epoch_s.items()},
    )


def _build(model: str, size: str, batch: int, device: torch.device, amp: bool, compile: bool,
           seed: int, dropout: float | None) -> tuple[dict[str, AdamTask], tuple[torch.Tensor, ...], int]:
    """The two tasks (reference, fast) on copies of one model, a random batch, the epochs."""
    torch.manual_seed(seed)
    dcase = load_config("dcase_baseline")
    if model == "prior":
        network = PixelSNAIL(DCASE_MAP, VOCAB_SIZE, N_CLASSES, **{**PRIOR_SIZES[size], "dropout": dropout}).to(device)
        data = (torch.randint(0, VOCAB_SIZE, (batch, *DCASE_MAP)), torch.arange(batch) % N_CLASSES)
        make: Callable[..., AdamTask] = lambda net, fast: PriorTask(net, LEARNING_RATE, device, amp and fast,
                                                                       fast_path=fast, compile=compile and fast)
        epochs = dcase.prior.train.epochs
    else:
        config = load_config(AUTOENCODER_CONFIGS[size])
        shape = (dcase.mel.n_mels, mel_frames(dcase.audio.clip_samples, dcase.mel.n_fft, dcase.mel.hop_length))  # 80 x 344
        network = build_autoencoder(config.autoencoder, shape).to(device)
        data = (torch.randn(batch, *shape) * 2.0 - 5.0,)  # about the log-mel's range
        commitment = config.autoencoder.quantizer.commitment
        make = lambda net, fast: AutoencoderTask(net, commitment, LEARNING_RATE, device, amp and fast, fast_path=fast,
                                                 compile=compile and fast)
        epochs = dcase.autoencoder.train.epochs
    return {"reference": make(network, False), "fast": make(copy.deepcopy(network), True)}, data, epochs


def _timed_step(step: Callable[[], dict[str, float]], device: torch.device) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, loss) of one step."""
    synchronize(device)
    wall, cpu = time.perf_counter(), time.process_time()
    losses = step()
    synchronize(device)
    return time.perf_counter() - wall, time.process_time() - cpu, losses["loss"]


def peak_memory(step: Callable[[], dict[str, float]], device: torch.device) -> float | None:
    """The peak memory of one step in MiB (see the module docstring)."""
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        step()
        synchronize(device)
        return torch.cuda.max_memory_allocated(device) / MIB
    with ResidentPeak() as sampler:
        step()
    return sampler.peak_mib


def _summary(rows: list[tuple[float, float, float]], peak_mib: float | None, batch: int) -> PathTiming:
    walls, cpus, losses = zip(*rows)
    step = statistics.median(walls)
    return PathTiming(step_s=step, cpu_s=statistics.median(cpus), steps_per_s=1 / step, clips_per_s=batch / step,
                      peak_mib=peak_mib, losses=list(losses))


def memory_measure(device: torch.device) -> str:
    if device.type == "cuda":
        return "CUDA peak allocated by torch during a step"
    if STATM.exists():
        return "peak resident memory above the step's start, free memory released first (sampled every ms)"
    return "not measured (no /proc/self/statm)"


class ResidentPeak:
    """The highest resident memory of this process while inside, above its level on entry, in MiB
    (None without /proc/self/statm); sampled every millisecond by a thread."""

    def __init__(self, interval_s: float = 0.001) -> None:
        self.interval_s, self.peak_mib = interval_s, None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> ResidentPeak:
        if STATM.exists():
            _release_free_memory()
            self._start = self._highest = _resident_bytes()
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if STATM.exists():
            self._stop.set()
            self._thread.join()
            self._highest = max(self._highest, _resident_bytes())
            self.peak_mib = (self._highest - self._start) / MIB

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._highest = max(self._highest, _resident_bytes())


def _release_free_memory() -> None:
    """Hand memory freed by earlier steps back to the system (glibc's malloc_trim), so that a step
    reusing it still shows as resident growth; a no-op without glibc."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _resident_bytes() -> int:
    return int(STATM.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def format_train_bench(result: TrainBench) -> str:
    """The human-readable report of ``bench_train``."""
    paths = (("reference", result.reference), ("fast", result.fast))
    memory = lambda t: "n/a" if t.peak_mib is None else f"{t.peak_mib:.0f} MiB"
    lines = [
        f"foley bench train: {result.model}, {result.size} size"
        f"{'' if result.dropout is None else f', dropout {result.dropout:g}'}, batch {result.batch}, device {result.device}, "
        f"{result.threads} torch thread(s){', fast path under bf16 autocast (reference float32)' if result.amp else ''}"
        f"{', TF32' if result.tf32 else ''}{', fast path compiled' if result.compile else ''}",
        f"  load average {result.load_average[0]:.2f} before, {result.load_average[1]:.2f} after "
        f"({os.cpu_count()} cores); median of {result.steps} interleaved steps per path",
        f"  {'path':10s} {'s/step':>9s} {'CPU s/step':>11s} {'steps/s':>9s} {'clips/s':>9s} {'peak memory':>12s}"
        f" {'epoch (4,850 clips)':>20s} {f'{result.epochs} epochs':>14s}",
    ]
    for name, t in paths:
        lines.append(f"  {name:10s} {t.step_s:9.3f} {t.cpu_s:11.3f} {t.steps_per_s:9.3f} {t.clips_per_s:9.2f} "
                     f"{memory(t):>12s} {_duration(result.epoch_s[name]):>20s} {_duration(result.total_h[name] * 3600):>14s}")
    lines.append(f"  fast / reference: {result.ratio:.2f}x faster per step (wall clock), {result.cpu_ratio:.2f}x in CPU time")
    lines.append(f"  peak memory: {result.memory}")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
