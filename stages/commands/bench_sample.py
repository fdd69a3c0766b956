"""Benchmarks on randomly initialised models: no run folder, no data, nothing downloaded.

``bench_sample`` times the reference and the fast sampler on one PixelSNAIL, in one process, on
the same clips. The reference re-reads every earlier row at each of the H * W positions, so its
step costs more further down the map (convolutions grow linearly with the rows read, attention
quadratically). At large sizes it is timed on a few rows and extrapolated: a polynomial of degree
<= 2 in the rows read, through the timed steps, summed over every position. On a GPU it also
times the whole DCASE set: 100 clips x 7 classes, prior + decoding + vocoding. With a guidance
scale other than 1 the prior gets a null label and the fast sampler is also timed with
classifier-free guidance (each clip sampled under its label and the null label in one batch).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

import numpy as np
import torch

from foley.config import SampleConfig, load_config
from foley.models.autoencoder import Autoencoder
from foley.models.builders import build_autoencoder
from foley.models.pixelsnail import PixelSNAIL
from foley.sample.fast import FastSampler
from foley.sample.generate import Generated, generate
from foley.sample.reference import clip_seed, clip_uniforms, reference_step, sample_reference
from foley.stages.commands.bench_sizes import DCASE_MAP, N_CLASSES, PRIOR_SIZES, VOCAB_SIZE
from foley.stages.commands.vocoding import dcase_vocoder
from foley.util.device import synchronize
from foley.util.shapes import mel_frames
from foley.vocoders.base import Vocoder

DEFAULT_REFERENCE_ROWS = 3
MIB = 2**20
DCASE_VOCODER_BATCH = 100  # mels per HiFi-GAN call in the DCASE-set timing (bounds its memory)


@dataclass
class SampleBench:
    size: str
    map: str
    batch: int
    device: str
    threads: int
    load_average: float  # 1-minute load when the benchmark started
    amp: bool
    reference_s_per_clip: float
    reference_extrapolated: bool
    reference_rows_timed: list[int]  # empty when the whole reference run was timed
    reference_step_s: list[float]
    fast_s_per_clip: float
    fast_setup_s: float  # weight-norm folding and weight copies, once per sampler
    fast_state_mib_per_clip: float
    peak_cuda_mib: float | None
    ratio: float
    maps_identical: bool | None  # only known when the whole reference ran (float32)
    guidance: float = 1.0
    fast_guided_s_per_clip: float | None = None  # the fast sampler with classifier-free guidance (None at guidance 1)
    dcase_set: dict[str, Any] | None = None

    @property
    def guidance_cost(self) -> float | None:
        """Guided over plain fast sampling time (about 2: twice the batch)."""
        return None if self.fast_guided_s_per_clip is None else self.fast_guided_s_per_clip / self.fast_s_per_clip

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "guidance_cost": self.guidance_cost}


def bench_prior(size: str, map_shape: tuple[int, int], device: torch.device, seed: int = 0,
                label_dropout: float = 0.0) -> PixelSNAIL:
    """A PixelSNAIL of the named size with random weights, in eval mode on ``device`` (with a null
    label when ``label_dropout`` > 0)."""
    if size not in PRIOR_SIZES:
        raise ValueError(f"unknown size {size!r}; sizes: {', '.join(PRIOR_SIZES)}")
    torch.manual_seed(seed)
    model = PixelSNAIL(map_shape, VOCAB_SIZE, N_CLASSES, **PRIOR_SIZES[size], label_dropout=label_dropout)
    return model.to(device).eval()


def bench_sample(
    size: str,
    batch: int,
    map_shape: tuple[int, int] = DCASE_MAP,
    reference_rows: int = DEFAULT_REFERENCE_ROWS,
    device: torch.device = torch.device("cpu"),
    amp: bool = False,
    dcase_batch: int | None = None,
    progress: bool = False,
    guidance: float = 1.0,
) -> SampleBench:
    """Seconds per clip of both samplers at ``batch`` clips; ``reference_rows`` 0 runs the whole reference.

    ``dcase_batch``: also time the DCASE set with that prior batch size (None: do not).
    ``guidance`` != 1: also time the fast sampler with classifier-free guidance at that scale.
    """
    load = os.getloadavg()[0]
    prior = bench_prior(size, map_shape, device, label_dropout=0.1 if guidance != 1 else 0.0)
    labels = (torch.arange(batch) % N_CLASSES).to(device)
    seeds = [clip_seed(0, int(label), i) for i, label in enumerate(labels)]
    fast_maps, fast = time_fast(prior, labels, seeds, amp, progress)
    guided = None if guidance == 1 else time_fast(prior, labels, seeds, amp, progress, guidance)[1]["seconds"] / batch
    rows, steps, identical = [], [], None
    if reference_rows == 0:
        reference_maps, seconds = _timed(lambda: sample_reference(prior, labels, seeds, progress=progress), device)
        if not amp:
            identical = bool(torch.equal(reference_maps, fast_maps))
    else:
        rows = timed_rows(map_shape[0], reference_rows)
        steps = time_reference_steps(prior, labels, seeds, rows)
        seconds = extrapolate_reference(rows, steps, map_shape)
    result = SampleBench(
        size=size, map=f"{map_shape[0]}x{map_shape[1]}", batch=batch, device=str(device),
        threads=torch.get_num_threads(), load_average=load, amp=amp,
        reference_s_per_clip=seconds / batch, reference_extrapolated=reference_rows != 0,
        reference_rows_timed=rows, reference_step_s=steps, ratio=seconds / fast["seconds"],
        fast_s_per_clip=fast["seconds"] / batch, fast_setup_s=fast["setup"],
        fast_state_mib_per_clip=fast["state"] / batch / MIB, peak_cuda_mib=fast["peak"], maps_identical=identical,
        guidance=guidance, fast_guided_s_per_clip=guided,
    )
    if dcase_batch is not None:
        result.dcase_set = time_dcase_set(prior, dcase_batch, amp, progress)
    return result


def time_fast(prior: PixelSNAIL, labels: torch.Tensor, seeds: list[int], amp: bool, progress: bool,
              guidance: float = 1.0) -> tuple[torch.Tensor, dict[str, Any]]:
    """The fast sampler's maps and timings: setup and sampling seconds, state bytes, CUDA peak MiB."""
    device = prior.background.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sampler, setup = _timed(lambda: FastSampler(prior, amp), device)
    maps, seconds = _timed(lambda: sampler(labels, seeds, progress=progress, guidance=guidance), device)
    peak = torch.cuda.max_memory_allocated(device) / MIB if device.type == "cuda" else None
    return maps, {"setup": setup, "seconds": seconds, "state": sampler.model.state_bytes(), "peak": peak}


def timed_rows(height: int, count: int) -> list[int]:
    """``count`` rows spread evenly from the first to the last (fewer when the map is shorter)."""
    return sorted({int(round(row)) for row in np.linspace(0, height - 1, count)})


@torch.no_grad()
def time_reference_steps(prior: PixelSNAIL, labels: torch.Tensor, seeds: list[int], rows: list[int],
                         min_seconds: float = 1.0, max_steps: int = 5) -> list[float]:
    """Seconds of a reference step (``reference_step``) on each row, after one untimed step.

    Per row: the median of consecutive steps, taken until ``min_seconds`` have passed or
    ``max_steps`` were timed (so short steps are timed several times, long ones once).
    """
    height, width = prior.map_shape
    device = prior.background.device
    codes = torch.zeros(len(labels), height, width, dtype=torch.long, device=device)
    uniforms = clip_uniforms(seeds, height * width).to(device)

    def step(position: int) -> None:
        reference_step(prior, codes, labels, position, uniforms[:, position], 1.0, 0)

    step(rows[0] * width)
    medians = []
    for row in rows:
        times: list[float] = []
        while len(times) < min(max_steps, width) and sum(times) < min_seconds:
            times.append(_timed(partial(step, row * width + len(times)), device)[1])
        medians.append(float(np.median(times)))
    return medians


def extrapolate_reference(rows: list[int], seconds: list[float], map_shape: tuple[int, int]) -> float:
    """Seconds for all H * W reference steps from steps timed at ``rows`` (see the module docstring)."""
    height, width = map_shape
    read = np.asarray(rows, dtype=np.float64) + 1
    fit = np.polyfit(read, seconds, min(2, len(rows) - 1))
    per_row = np.maximum(np.polyval(fit, np.arange(1, height + 1)), min(seconds))
    return width * float(per_row.sum())


def time_dcase_set(prior: PixelSNAIL, batch: int, amp: bool, progress: bool) -> dict[str, Any]:
    """The dcase_baseline config's clips per class x classes through ``prior``, its autoencoder and HiFi-GAN."""
    config = load_config("dcase_baseline")
    device = prior.background.device
    frames = mel_frames(config.audio.clip_samples, config.mel.n_fft, config.mel.hop_length)
    autoencoder = build_autoencoder(config.autoencoder, (config.mel.n_mels, frames)).to(device).eval()
    vocoder = dcase_vocoder().to(device)
    vocoder.batch_size = DCASE_VOCODER_BATCH
    per_class = config.sample.per_class
    generated, seconds = time_generation(prior, autoencoder, vocoder, config.class_count, per_class, batch, amp,
                                         config.audio.clip_samples, progress)
    clips = len(generated.audio)
    return {"clips": clips, "seconds": seconds, "s_per_clip": seconds / clips, "batch": batch,
            "vocoder": vocoder.name, "stages": "prior + decode + vocode"}


def time_generation(prior: PixelSNAIL, autoencoder: Autoencoder, vocoder: Vocoder, n_classes: int,
                    per_class: int, batch: int, amp: bool, num_samples: int,
                    progress: bool = False) -> tuple[Generated, float]:
    """``per_class`` clips of each class (prior, decoder, vocoder; ``batch`` at a time) and the seconds taken."""
    class_ids = [c for c in range(n_classes) for _ in range(per_class)]
    indices = [i for _ in range(n_classes) for i in range(per_class)]
    settings = SampleConfig(per_class=per_class, temperature=1.0, top_k=0, batch_size=batch, levels=0, guidance=1.0,
                            best_of=1, best_of_by="prior")
    run = partial(generate, prior, autoencoder, vocoder, class_ids, indices, 0, settings, "freq", num_samples,
                  progress=progress, amp=amp)
    return _timed(run, prior.background.device)


def format_sample_bench(result: SampleBench) -> str:
    """The human-readable report of ``bench_sample``."""
    size = PRIOR_SIZES[result.size]
    model = (f"channel {size['channel']}, kernel {size['kernel_size']}, {size['n_block']} blocks x "
             f"{size['n_res_block']} res blocks, attention, {VOCAB_SIZE} codes")
    if result.reference_extrapolated:
        steps = ", ".join(f"row {r}: {s:.3g} s" for r, s in zip(result.reference_rows_timed, result.reference_step_s))
        how = f"EXTRAPOLATED from steps timed on {len(result.reference_rows_timed)} rows ({steps} per step)"
    else:
        how = "measured: the whole run" + ("" if result.maps_identical is None else
                                           f"; maps identical to the fast sampler's: {result.maps_identical}")
    peak = "" if result.peak_cuda_mib is None else f"; peak CUDA memory {result.peak_cuda_mib:.0f} MiB"
    lines = [
        f"foley bench sample: {result.size} prior ({model}), map {result.map}, batch {result.batch}",
        f"  device {result.device}, {result.threads} torch thread(s), load average {result.load_average:.2f}"
        + (", fast sampler under bf16 autocast" if result.amp else ", float32"),
        f"  reference  {result.reference_s_per_clip:10.3f} s per clip  ({how})",
        f"  fast       {result.fast_s_per_clip:10.3f} s per clip  (plus {result.fast_setup_s:.2f} s setup once; "
        f"state {result.fast_state_mib_per_clip:.1f} MiB per clip{peak})",
        f"  ratio      {result.ratio:10.0f}x",
    ]
    if result.fast_guided_s_per_clip is not None:
        lines.append(f"  fast, CFG  {result.fast_guided_s_per_clip:10.3f} s per clip  (guidance {result.guidance:g}: "
                     f"{result.guidance_cost:.2f}x the unguided fast sampler; label and null label in one batch)")
    if result.dcase_set:
        d = result.dcase_set
        lines.append(f"  DCASE set  {d['clips']} clips, {d['stages']} with {d['vocoder']}, prior batch {d['batch']}: "
                     f"{d['seconds']:.1f} s ({d['s_per_clip']:.3f} s per clip)")
    return "\n".join(lines)


def _timed(fn: Callable[[], Any], device: torch.device) -> tuple[Any, float]:
    synchronize(device)
    start = time.perf_counter()
    result = fn()
    synchronize(device)
    return result, time.perf_counter() - start

