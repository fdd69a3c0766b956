"""The clip policy: any audio file -> mono clips of the configured rate and length; wav out.

A file is checked whole (foley.audio.integrity), decoded (foley.audio.formats), checked for empty,
non-finite and silent samples, noted when clipped, averaged to mono, resampled with soxr
(foley.audio.resampling), then cut into clips:
- long_files "crop": one clip, its first clip_samples (shorter files zero-padded);
- long_files "split": clips of clip_samples every split_hop samples; when the part after the last
  of them holds at least half a clip, one more clip ends at the recording's end; near-silent clips
  (peak below silence_db) are dropped and listed. A recording no longer than one clip gives one clip.
Every change made is recorded as a conversion, every offset in samples at the policy's rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from foley.audio.formats import decode
from foley.audio.integrity import check_complete, check_decoded, check_samples, clipping_note, peak_db
from foley.audio.resampling import SOXR_QUALITY, resample
from foley.util.atomic import atomic_path
from foley.util.errors import AudioError


@dataclass(frozen=True)
class ClipPolicy:
    """How files become clips. silence_db = -inf turns the silence checks off."""

    sample_rate: int
    clip_samples: int
    long_files: str = "crop"
    split_hop: int | None = None  # samples between split clips; None: one clip length
    silence_db: float = -60.0
    clipped_fraction: float = 0.001

    @property
    def hop(self) -> int:
        return self.split_hop or self.clip_samples


@dataclass(frozen=True)
class Recording:
    """A whole file made mono at the policy's rate, with the changes made and what was noted."""

    audio: np.ndarray
    conversions: tuple[str, ...]
    notes: tuple[str, ...]


@dataclass(frozen=True)
class Clip:
    """A clip made to the policy: mono float32 at the target rate and length, from `offset` in its recording."""

    audio: np.ndarray
    conversions: tuple[str, ...]
    offset: int = 0


@dataclass(frozen=True)
class Clips:
    """The clips cut from one recording, and the offsets of the near-silent ones dropped."""

    clips: tuple[Clip, ...]
    dropped: tuple[int, ...]
    notes: tuple[str, ...]


def read_recording(path: str | Path, policy: ClipPolicy) -> Recording:
    """Check, decode and convert a whole file; AudioError names the reason when it cannot be used."""
    path = Path(path)
    check_complete(path)
    decoded = decode(path)
    check_decoded(decoded)
    check_samples(decoded.samples, policy.silence_db)
    note = clipping_note(decoded.samples, policy.clipped_fraction)
    conversions = []
    if decoded.samples.shape[1] > 1:
        conversions.append(f"{decoded.samples.shape[1]} channels -> mono (mean)")
    audio = decoded.samples.mean(axis=1, dtype=np.float32)
    if decoded.sample_rate != policy.sample_rate:
        audio = resample(audio, decoded.sample_rate, policy.sample_rate)
        conversions.append(f"resampled {decoded.sample_rate} -> {policy.sample_rate} Hz (soxr {SOXR_QUALITY})")
    return Recording(audio, tuple(conversions), (note,) if note else ())


def cut_clips(recording: Recording, policy: ClipPolicy) -> Clips:
    """The recording's clips under the policy; AudioError when none is left (all near-silent)."""
    n, length = recording.audio.shape[0], policy.clip_samples
    offsets = split_offsets(n, length, policy.hop) if policy.long_files == "split" else [0]
    kept, dropped = [], []
    for index, offset in enumerate(offsets):
        audio, change = fit_length(recording.audio[offset : offset + length] if len(offsets) > 1 else recording.audio, length)
        if peak_db(audio) < policy.silence_db:
            dropped.append(offset)
            continue
        where = [f"clip {index + 1} of {len(offsets)} from {offset:,} of {n:,} samples"] if len(offsets) > 1 else []
        kept.append(Clip(audio, recording.conversions + tuple(where) + ((change,) if change else ()), offset))
    if not kept:
        seconds = length / policy.sample_rate
        scope = "every split clip" if len(offsets) > 1 else f"its first {seconds:g} s (the part data.long_files crop keeps)"
        raise AudioError(f"silent: {scope} peaks below data.silence_db = {policy.silence_db:g} dBFS")
    return Clips(tuple(kept), tuple(dropped), recording.notes + _dropped_note(dropped, policy))


def _dropped_note(dropped: list[int], policy: ClipPolicy) -> tuple[str, ...]:
    if not dropped:
        return ()
    where = ", ".join(f"{offset / policy.sample_rate:.1f} s" for offset in dropped)
    return (f"{len(dropped)} near-silent split clip(s) dropped (at {where})",)


def split_offsets(n: int, length: int, hop: int) -> list[int]:
    """Clip starts every hop samples while a whole clip fits, plus one ending at n when at least half a clip is left over."""
    if n <= length:
        return [0]
    offsets = list(range(0, n - length + 1, hop))
    if n - (offsets[-1] + length) >= math.ceil(length / 2):
        offsets.append(n - length)
    return offsets


def read_clip(path: str | Path, sample_rate: int, num_samples: int, offset: int = 0) -> Clip:
    """The clip of num_samples at `offset` in the converted recording (zero-padded at its end).

    Integrity checks apply; silence checks do not (prepare already decided which clips to use).
    """
    policy = ClipPolicy(sample_rate, num_samples, silence_db=-math.inf)
    recording = read_recording(path, policy)
    audio, change = fit_length(recording.audio[offset:], num_samples)
    return Clip(audio, recording.conversions + ((change,) if change else ()), offset)


def is_clip_file(path: str | Path, sample_rate: int, num_samples: int) -> bool:
    """Whether a file already is a clip as foley writes them: 16-bit PCM mono WAV, this rate and length."""
    try:
        info = sf.info(str(path))
    except Exception:  # libsndfile reports unreadable files through its own error types
        return False
    return (info.format, info.subtype, info.channels, info.samplerate, info.frames) == (
        "WAV", "PCM_16", 1, sample_rate, num_samples)


def fit_length(audio: np.ndarray, num_samples: int) -> tuple[np.ndarray, str | None]:
    """Zero-pad or crop to num_samples; also returns the change made, if any."""
    n = audio.shape[-1]
    if n < num_samples:
        return np.pad(audio, (0, num_samples - n)), f"zero-padded {n} -> {num_samples} samples"
    if n > num_samples:
        return audio[:num_samples], f"cropped {n} -> {num_samples} samples"
    return audio, None


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write 16-bit PCM mono atomically (temporary file + rename); samples are clipped to [-1, 1]."""
    with atomic_path(path) as tmp:
        sf.write(str(tmp), to_pcm16(audio), sample_rate, subtype="PCM_16", format="WAV")


def to_pcm16(audio: np.ndarray) -> np.ndarray:
    """Float samples -> the int16 values written to disk: round(clip(x, -1, 1) * 32767)."""
    return np.round(np.clip(np.asarray(audio, dtype=np.float64), -1.0, 1.0) * 32767).astype(np.int16)
