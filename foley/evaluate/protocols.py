"""FAD protocols: how a clip becomes the windows an Embedder sees, and which clips are accepted.

dcase2023 is the official DCASE 2023 Task 7 evaluator (dcase2023_task7_eval_fad), step for step:
- the wav's samples as scipy.io.wavfile reads them (int16 values, -32768..32767), not resampled:
  the 22,050 Hz clips are fed as if they were at the embedder's 16 kHz (other formats, accepted only
  with relaxed checks, are read by libsndfile as int16 values);
- each clip divided by max(0.1, max(x)): its positive peak (not the absolute one), floored at 0.1;
- windows of 16,000 samples every 8,000, partial windows dropped: 10 per 88,200-sample clip;
- for VGGish each window gives one 96-frame example (98 frames fit; the example framing keeps 96);
- inputs checked as the evaluator's FADWrapper does: 100 wav files per class folder, 22,050 Hz,
  mono, 88,200 samples (and 16-bit PCM, which its int16 reading assumes); every offender is reported.
standard is VGGish as fadtk uses it:
- the clip (any format libsndfile reads) as floats in [-1, 1], channels averaged, resampled to the
  embedder's rate (16 kHz for VGGish) with fadtk's resampler (foley.audio.resampling.kaiser_best:
  torchaudio's Kaiser-windowed sinc with the "kaiser_best" constants; fadtk then stores the result
  as 16-bit PCM, which foley does not);
- contiguous non-overlapping 0.96 s examples over the whole clip, i.e. windows of 15,600 samples
  every 15,360 (exactly the examples VGGish's own framing cuts from the clip's log-mel); a clip
  shorter than one window is zero-padded to one, as fadtk pads short clips.
Clip files are found by content (foley.audio.formats) and must be whole (foley.audio.integrity).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from scipy.io import wavfile

from foley.audio.clips import to_pcm16
from foley.audio.formats import container_of, list_folder
from foley.audio.integrity import check_complete
from foley.audio.resampling import FAD_RESAMPLER, kaiser_best
from foley.util.errors import AudioError, DataError, FoleyError

PEAK_FLOOR = 0.1  # the evaluator's 10 ** (-20 dB / 20): quiet clips are raised by at most 20 dB
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClipArray:
    """A clip held in memory: samples (T,) or (T, channels) at sample_rate, named for messages.

    Under dcase2023, float samples in [-1, 1] become the int16 values foley.audio.clips.write_wav stores
    (round(clip(x) * 32767)), so an array embeds exactly as the wav written from it; under
    standard, integer samples are divided by 32768 as soundfile reads 16-bit files.
    """

    samples: np.ndarray
    sample_rate: int
    name: str = "array"


ClipSource = str | Path | ClipArray


def describe(source: ClipSource) -> str:
    """How messages name a clip: its path, or an in-memory clip's name."""
    return source.name if isinstance(source, ClipArray) else str(source)


@dataclass(frozen=True)
class Framing:
    """A protocol made concrete for one embedder: lengths in samples at sample_rate."""

    protocol: str
    sample_rate: int
    window: int  # samples per window; 0: the whole clip is one window
    step: int
    resampler: str | None  # how clips are resampled to sample_rate (None: the samples are fed as they are)
    pcm_values: bool  # 16-bit PCM as integer values (True) or as floats in [-1, 1]
    peak_normalise: bool
    pad_short: bool  # zero-pad a clip shorter than one window (False: it gives no window)

    @property
    def key(self) -> str:
        """protocol name + a digest of every setting: changes whenever the framing's behaviour changes."""
        fields = json.dumps(dataclasses.asdict(self), sort_keys=True).encode()
        return f"{self.protocol}-{hashlib.sha256(fields).hexdigest()[:10]}"


@dataclass(frozen=True)
class Protocol:
    """How clips become an embedder's windows, and whether the official input checks apply.

    A protocol may fix the rate and the windows (dcase2023), or take them from the embedder
    (standard: its own rate and its natural window and hop), so that embedders at 16, 32 or 48 kHz
    fit; `framing` makes it concrete for one embedder.
    """

    name: str
    sample_rate: int | None  # None: the embedder's rate
    window: int | None  # None: the embedder's window (0: the whole clip)
    step: int | None  # None: the embedder's hop
    resampler: str | None
    pcm_values: bool
    peak_normalise: bool
    pad_short: bool
    official_checks: bool  # enforce the official evaluator's input checks

    def framing(self, embedder: Any) -> Framing:
        """The windows this protocol cuts for `embedder` (anything with sample_rate, window and hop)."""
        if self.sample_rate is not None and self.sample_rate != embedder.sample_rate:
            raise FoleyError(
                f"protocol {self.name} makes {self.sample_rate} Hz windows but embedder {embedder.name} takes "
                f"{embedder.sample_rate} Hz; use a protocol that resamples to the embedder's rate (standard)"
            )
        window = embedder.window if self.window is None else self.window
        step = embedder.hop if self.step is None else self.step
        return Framing(self.name, embedder.sample_rate, window, step, self.resampler, self.pcm_values,
                       self.peak_normalise, self.pad_short)


DCASE2023 = Protocol(
    name="dcase2023", sample_rate=16000, window=16000, step=8000, resampler=None, pcm_values=True,
    peak_normalise=True, pad_short=False, official_checks=True,
)
STANDARD = Protocol(
    name="standard", sample_rate=None, window=None, step=None, resampler=FAD_RESAMPLER,
    pcm_values=False, peak_normalise=False, pad_short=True, official_checks=False,
)


def get_protocol(name: str) -> Protocol:
    """The protocol registered as `name` (foley.registry.PROTOCOLS)."""
    from foley.registry import PROTOCOLS

    return PROTOCOLS.get(name)


def peak_normalise(samples: np.ndarray) -> np.ndarray:
    """samples / max(0.1, max(samples)), in float64: the evaluator's loudness normalisation."""
    x = np.asarray(samples, dtype=np.float64)
    return x / max(PEAK_FLOOR, float(x.max()))


def clip_windows(samples: np.ndarray, framing: Framing) -> np.ndarray:
    """A mono clip (T,) -> its windows (K, framing.window) in float64, after normalisation
    (window 0: the whole clip as one window)."""
    x = np.asarray(samples, dtype=np.float64)
    if x.size == 0:
        raise AudioError("zero-length: the clip holds no samples")
    if framing.peak_normalise:
        x = peak_normalise(x)
    if framing.window == 0:
        return x[None].copy()
    if framing.pad_short and x.size < framing.window:
        x = np.pad(x, (0, framing.window - x.size))
    if x.size < framing.window:
        return np.zeros((0, framing.window))
    return np.lib.stride_tricks.sliding_window_view(x, framing.window)[:: framing.step].copy()


def _pcm_values(samples: np.ndarray) -> np.ndarray:
    if np.issubdtype(samples.dtype, np.integer):
        return samples.astype(np.float64)
    return to_pcm16(samples).astype(np.float64)


def _mono(samples: np.ndarray) -> np.ndarray:
    return samples.mean(axis=1) if samples.ndim == 2 else samples


def read_samples(source: ClipSource, framing: Framing, data: bytes | None = None) -> np.ndarray:
    """The clip's mono samples as the framing feeds them, at framing.sample_rate when it resamples.

    data: the file's bytes when the caller has already read them. AudioError says what is wrong.
    """
    if isinstance(source, ClipArray):
        samples, rate = np.asarray(source.samples), source.sample_rate
        if framing.pcm_values:
            samples = _pcm_values(samples)
        elif np.issubdtype(samples.dtype, np.integer):
            samples = samples / 32768.0
    else:
        samples, rate = _read_file(Path(source).read_bytes() if data is None else data, framing)
    samples = _mono(np.asarray(samples, dtype=np.float64))
    if framing.resampler is not None and rate != framing.sample_rate:
        samples = kaiser_best(samples, rate, framing.sample_rate)
    return samples


def _read_file(data: bytes, framing: Framing) -> tuple[np.ndarray, int]:
    """A whole file's samples and rate: int16 values under pcm_values (scipy's reading for WAV, as
    the official evaluator), else floats in [-1, 1]."""
    check_complete(data)
    try:
        if framing.pcm_values and container_of(data[:16]) == "WAV":
            rate, samples = wavfile.read(io.BytesIO(data))
            return samples, rate
        samples, rate = sf.read(io.BytesIO(data), dtype="int16" if framing.pcm_values else "float64", always_2d=True)
    except Exception as err:  # scipy and libsndfile report unreadable files through many error types
        raise AudioError(f"unreadable as audio ({err})") from None
    return samples, rate


# ---------------------------------------------------------------------------------------------
# The official input checks


@dataclass(frozen=True)
class InputRequirements:
    clips_per_class: int = 100
    sample_rate: int = 22050
    channels: int = 1
    num_samples: int = 88200
    subtype: str = "PCM_16"
    format: str = "WAV"


OFFICIAL_INPUTS = InputRequirements()


@dataclass(frozen=True)
class InputProblem:
    path: str
    problem: str


def class_files(root: str | Path, class_names: Sequence[str]) -> dict[str, list[Path]]:
    """The audio files of root/<class>/ for each class (any format, by content), sorted; the entries
    skipped (hidden, sub-folders, not audio) are named in a warning. DataError names missing folders."""
    root = Path(root)
    missing = [name for name in class_names if not (root / name).is_dir()]
    if missing:
        raise DataError(f"'{root}' has no class folder(s) {', '.join(missing)} (expected {root}/<class>/<audio files>)")
    listings = {name: list_folder(root / name) for name in class_names}
    skipped = [f"{s.path} ({s.reason})" for listing in listings.values() for s in listing.skipped]
    if skipped:
        log.warning("%d entries of '%s' are not clips and are skipped: %s", len(skipped), root, "; ".join(skipped))
    return {name: list(listing.audio) for name, listing in listings.items()}


def _file_problems(path: Path, need: InputRequirements) -> list[str]:
    try:
        info = sf.info(str(path))
    except Exception as err:  # libsndfile reports unreadable files through its own error types
        return [f"unreadable ({str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__})"]
    found = []
    if info.format != need.format:
        found.append(f"format {info.format}, expected {need.format}")
    if info.samplerate != need.sample_rate:
        found.append(f"sample rate {info.samplerate} Hz, expected {need.sample_rate}")
    if info.channels != need.channels:
        found.append(f"{info.channels} channels, expected {need.channels}")
    if info.frames != need.num_samples:
        found.append(f"{info.frames} samples, expected {need.num_samples}")
    if info.subtype != need.subtype:
        found.append(f"sample format {info.subtype}, expected {need.subtype}")
    return found


def check_inputs(
    files_by_class: Mapping[str, Sequence[Path]], need: InputRequirements = OFFICIAL_INPUTS
) -> list[InputProblem]:
    """Every way the files differ from what the official evaluator accepts (empty when they do not)."""
    problems = []
    for name, files in files_by_class.items():
        if len(files) != need.clips_per_class:
            problems.append(InputProblem(name, f"{len(files)} audio files, expected exactly {need.clips_per_class}"))
        for path in files:
            problems += [InputProblem(str(path), text) for text in _file_problems(Path(path), need)]
    return problems


def enforce_inputs(
    files_by_class: Mapping[str, Sequence[Path]],
    relax: bool,
    need: InputRequirements = OFFICIAL_INPUTS,
) -> list[InputProblem]:
    """check_inputs, raising DataError that lists every problem unless relax; returns the problems."""
    problems = check_inputs(files_by_class, need)
    if problems and not relax:
        lines = "\n".join(f"  {p.path}: {p.problem}" for p in problems)
        raise DataError(
            f"{len(problems)} input problem(s) against the official DCASE 2023 evaluator's checks "
            f"(relax them with --relax-checks; the numbers are then not official):\n{lines}"
        )
    return problems
