"""The built-in synthetic Foley set: procedural clips of the seven DCASE 2023 Task 7 classes.

foley's default demo trains without downloads on this set. It is written to disk in exactly the
DCASE layout and read back through the same code as the real data:

    <root>/dev/<DevClassName>/0001.wav ...      training clips  (DogBark/, Footstep/, ...)
    <root>/eval/<eval_class_name>/0001.wav ...  held-out reference clips for FAD (dog_bark/, ...)

Every clip is 16-bit PCM mono at the given rate and length (DCASE: 22,050 Hz, 88,200 samples).
Each class has a recipe with its own acoustic signature (harmonic barks with falling pitch, low
thumps with clicks, a broadband crack with a reverberant tail, ...) and random variation of
timing, pitch, filters and level (peak 0.3-0.9) per clip over a faint background. Each clip draws
from its own seed (`clip_seed`), so a clip never depends on how many others are written, and the
dev and eval splits never share a clip. Recipes are vectorised numpy/scipy (event loops only).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.signal import lfilter, sosfilt
from tqdm import tqdm

from foley.audio.clips import write_wav
from foley.util.errors import DataError

SPEED_OF_SOUND = 343.0
PEAK_RANGE = (0.3, 0.9)
BACKGROUND_RMS_RANGE = (2e-4, 4e-4)
BACKGROUND_POLE = 0.95
CLIP_NAME_DIGITS = 4
MIN_SAMPLE_RATE = 8000
BUTTERWORTH_Q = 1 / np.sqrt(2)
RAIN_DROP_PITCHES = 4
DCASE_DEV_COUNTS = (617, 703, 777, 800, 581, 741, 631)  # the DCASE 2023 Task 7 development set: 4,850 clips

Recipe = Callable[[np.random.Generator, int, int], np.ndarray]
Span = tuple[float, float]


# ---------------------------------------------------------------------------------------------
# Building blocks: filtered noise, impulse trains, envelopes


def _biquad(kind: str, freq: float, q: float, sr: int) -> np.ndarray:
    """One second-order section [b0, b1, b2, 1, a1, a2] (audio-EQ cookbook formulas): a "lowpass",
    "highpass" or "bandpass" (0 dB peak) at freq Hz with quality factor q."""
    omega = 2 * np.pi * freq / sr
    cos, alpha = np.cos(omega), np.sin(omega) / (2 * q)
    numerators = {
        "lowpass": ((1 - cos) / 2, 1 - cos, (1 - cos) / 2),
        "highpass": ((1 + cos) / 2, -(1 + cos), (1 + cos) / 2),
        "bandpass": (alpha, 0.0, -alpha),
    }
    return np.array([*numerators[kind], 1 + alpha, -2 * cos, 1 - alpha]) / (1 + alpha)


def _band_noise(rng: np.random.Generator, n: int, low: float, high: float, sr: int) -> np.ndarray:
    """White noise band-passed to [low, high] Hz by 4th-order Butterworth-squared edges."""
    high = min(high, 0.45 * sr)
    low = min(low, 0.8 * high)
    highpass = _biquad("highpass", low, BUTTERWORTH_Q, sr)
    lowpass = _biquad("lowpass", high, BUTTERWORTH_Q, sr)
    sections = np.stack([highpass, highpass, lowpass, lowpass])
    return sosfilt(sections, rng.standard_normal(n, dtype=np.float32))


def _impulses(n: int, times_s: np.ndarray, amplitudes: np.ndarray, sr: int) -> np.ndarray:
    """A train of weighted unit impulses at the given times; times past the end are dropped."""
    train = np.zeros(n)
    index = np.round(np.asarray(times_s) * sr).astype(int)
    keep = (index >= 0) & (index < n)
    np.add.at(train, index[keep], np.asarray(amplitudes)[keep])
    return train


def _decay_envelope(impulses: np.ndarray, decay_s: float, sr: int) -> np.ndarray:
    """Instant attack, exponential decay (time constant decay_s) after every impulse."""
    pole = np.exp(-1.0 / (decay_s * sr))
    return lfilter([1.0], [1.0, -pole], impulses)


def _resonate(impulses: np.ndarray, freq: float, decay_s: float, sr: int) -> np.ndarray:
    """Ring a two-pole resonator (a damped sinusoid at freq Hz) at every impulse."""
    radius = np.exp(-1.0 / (decay_s * sr))
    omega = 2 * np.pi * min(freq, 0.45 * sr) / sr
    return lfilter([np.sin(omega)], [1.0, -2 * radius * np.cos(omega), radius**2], impulses)


def _attack_decay(n: int, attack_s: float, decay_s: float, sr: int) -> np.ndarray:
    """A linear attack over attack_s, exponential decay (time constant decay_s), and a linear
    release over the last fifth of the n samples so that the event ends at zero."""
    t = np.arange(n) / sr
    attack = np.minimum(t / attack_s, 1.0)
    decay = np.exp(-np.maximum(t - attack_s, 0.0) / decay_s)
    release = np.minimum((n - np.arange(n)) / (0.2 * n), 1.0)
    return attack * decay * release


def _harmonic_tone(f0: np.ndarray, count: int, tilt: float, sr: int) -> np.ndarray:
    """Harmonics 1..count of a time-varying fundamental, amplitude k^-tilt, all below Nyquist.

    sin(k phase) comes from the recurrence sin(k x) = 2 cos(x) sin((k-1) x) - sin((k-2) x).
    """
    phase = np.mod(2 * np.pi * np.cumsum(f0) / sr, 2 * np.pi).astype(np.float32)
    twice_cos = 2 * np.cos(phase)
    previous, current = np.zeros_like(phase), np.sin(phase)
    tone = np.zeros_like(phase)
    for k in range(1, min(count, int(0.45 * sr / f0.max())) + 1):
        tone += k**-tilt * current
        previous, current = current, twice_cos * current - previous
    return tone


def _unit_peak(audio: np.ndarray) -> np.ndarray:
    peak = np.max(np.abs(audio))
    return audio / peak if peak > 0 else audio


def _place(out: np.ndarray, event: np.ndarray, start: int) -> None:
    """Add an event into out at sample start, cut at the end of out."""
    end = min(start + event.size, out.size)
    if start < end:
        out[start:end] += event[: end - start]


def _first_onset(rng: np.random.Generator, n: int, sr: int, latest_s: float) -> float:
    """A random first onset from 50 ms to latest_s into a 4 s clip, scaled for other lengths."""
    duration_s = n / sr
    return rng.uniform(0.0125, min(latest_s / duration_s, 0.25)) * duration_s


def _event_times(rng: np.random.Generator, count: int, first_s: float, gap_s: Span) -> np.ndarray:
    """count onset times: the first at first_s, each next one gap_s (uniform) later."""
    gaps = rng.uniform(*gap_s, size=count - 1)
    return first_s + np.concatenate(([0.0], np.cumsum(gaps)))


def _finish(rng: np.random.Generator, audio: np.ndarray, sr: int) -> np.ndarray:
    """Scale to a random peak level and lay the clip over a faint low-passed noise background."""
    scaled = _unit_peak(audio) * rng.uniform(*PEAK_RANGE)
    unit_gain = np.sqrt(1 - BACKGROUND_POLE**2)  # white noise through it keeps unit variance
    white = rng.standard_normal(audio.size, dtype=np.float32)
    background = lfilter([unit_gain], [1.0, -BACKGROUND_POLE], white)
    mix = scaled + background * rng.uniform(*BACKGROUND_RMS_RANGE)
    return np.clip(mix, -1.0, 1.0).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Recipes: recipe(rng, sample_rate, num_samples) -> float32 mono in [-1, 1]


def _bark(rng: np.random.Generator, sr: int) -> np.ndarray:
    """One bark: a few harmonics over a falling fundamental, a little breath noise."""
    duration = rng.uniform(0.1, 0.3)
    n = int(duration * sr)
    t = np.arange(n) / sr
    f0 = rng.uniform(300, 900) * rng.uniform(0.5, 0.8) ** (t / duration)
    voice = _unit_peak(_harmonic_tone(f0, int(rng.integers(3, 7)), rng.uniform(0.8, 1.5), sr))
    breath = _unit_peak(_band_noise(rng, n, 300, 3000, sr)) * rng.uniform(0.05, 0.2)
    return (voice + breath) * _attack_decay(n, rng.uniform(0.005, 0.03), duration / 3, sr)


def dog_bark(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """One to four barks at random onsets."""
    out = np.zeros(n)
    times = _event_times(rng, int(rng.integers(1, 5)), _first_onset(rng, n, sr, 1.0), (0.3, 0.8))
    for onset in times:
        _place(out, _bark(rng, sr) * rng.uniform(0.6, 1.0), int(onset * sr))
    return _finish(rng, out, sr)


def footstep(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """Regular steps at a walking rate: a low ringing thump, a dull body and a short click each."""
    rate = rng.uniform(1.4, 2.4)
    count = int(rng.integers(4, 10))
    times = _first_onset(rng, n, sr, 0.6) + np.arange(count) / rate + rng.normal(0, 0.015, count)
    steps = _impulses(n, times, rng.uniform(0.6, 1.0, count), sr)
    thump = _unit_peak(_resonate(steps, rng.uniform(50, 150), rng.uniform(0.03, 0.08), sr))
    body = _band_noise(rng, n, 50, rng.uniform(300, 600), sr) * _decay_envelope(steps, 0.04, sr)
    click_envelope = _decay_envelope(steps, rng.uniform(0.002, 0.006), sr)
    click = _unit_peak(_band_noise(rng, n, 1000, 5000, sr) * click_envelope)
    mix = thump + _unit_peak(body) * rng.uniform(0.3, 0.6) + click * rng.uniform(0.1, 0.3)
    return _finish(rng, mix, sr)


def gunshot(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """One or two shots: a broadband crack, a low boom and a long reverberant noise tail."""
    times = _event_times(rng, int(rng.integers(1, 3)), _first_onset(rng, n, sr, 0.8), (0.3, 1.2))
    shots = _impulses(n, times, rng.uniform(0.7, 1.0, times.size), sr)
    crack_envelope = _decay_envelope(shots, rng.uniform(0.002, 0.006), sr)
    crack = _band_noise(rng, n, 100, 10000, sr) * crack_envelope
    tail_band = _band_noise(rng, n, rng.uniform(60, 200), rng.uniform(1500, 3500), sr)
    tail = _unit_peak(tail_band * _decay_envelope(shots, rng.uniform(0.35, 0.7), sr))
    boom = _unit_peak(_resonate(shots, rng.uniform(40, 90), rng.uniform(0.05, 0.15), sr))
    return _finish(rng, _unit_peak(crack) + tail * rng.uniform(0.5, 0.8) + boom * 0.4, sr)


def keyboard(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """A stretch of typing: short high clicks at irregular times and levels."""
    start = _first_onset(rng, n, sr, 1.0)
    length = min(rng.uniform(1.5, 3.0), 0.75 * n / sr)
    count = max(3, int(rng.poisson(rng.uniform(6, 14) * length)))
    times = np.sort(rng.uniform(start, start + length, count))
    keys = _impulses(n, times, rng.uniform(0.3, 1.0, count), sr)
    band = _band_noise(rng, n, rng.uniform(2000, 3000), rng.uniform(4500, 6000), sr)
    return _finish(rng, band * _decay_envelope(keys, rng.uniform(0.002, 0.006), sr), sr)


def moving_motor_vehicle(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """A pass-by: harmonic engine with RPM wobble and doppler, road noise, louder when near."""
    t = np.arange(n) / sr
    speed, distance = rng.uniform(8, 25), rng.uniform(3, 8)
    x = speed * (t - rng.uniform(0.3, 0.7) * n / sr)
    r = np.sqrt(x**2 + distance**2)
    doppler = SPEED_OF_SOUND / (SPEED_OF_SOUND + speed * x / r)
    wobble_phase = 2 * np.pi * rng.uniform(0.3, 2.0) * t + rng.uniform(0, 2 * np.pi)
    f0 = rng.uniform(30, 120) * (1 + rng.uniform(0.02, 0.08) * np.sin(wobble_phase)) * doppler
    engine = _unit_peak(_harmonic_tone(f0, 10, rng.uniform(0.5, 1.5), sr))
    road = _unit_peak(_band_noise(rng, n, 100, rng.uniform(1500, 4000), sr))
    loudness = (distance / r) ** rng.uniform(1.0, 1.5)
    return _finish(rng, (engine + road * rng.uniform(0.1, 0.3)) * loudness, sr)


def rain(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """A steady filtered-noise bed and many droplets: pings at a few pitches and noisy ticks."""
    bed = _unit_peak(_band_noise(rng, n, rng.uniform(200, 1000), rng.uniform(4000, 9000), sr))
    count = int(rng.poisson(rng.uniform(30, 150) * n / sr))
    times, amplitudes = rng.uniform(0, n / sr, count), rng.uniform(0.1, 1.0, count)
    kind_count = RAIN_DROP_PITCHES + 1
    kind = rng.integers(0, kind_count, count)  # 0: a noisy tick, k > 0: a ping of pitch k
    drops = [_impulses(n, times[kind == k], amplitudes[kind == k], sr) for k in range(kind_count)]
    pings = sum(
        _resonate(d, rng.uniform(1000, 6000), rng.uniform(0.002, 0.008), sr) for d in drops[1:]
    )
    ticks = _band_noise(rng, n, 2000, 9000, sr) * _decay_envelope(drops[0], 0.003, sr)
    return _finish(rng, bed * rng.uniform(0.2, 0.5) + _unit_peak(pings + _unit_peak(ticks)), sr)


def sneeze_cough(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """One long sneeze or a fit of two or three shorter coughs."""
    count = int(rng.integers(1, 4))
    length_s = rng.uniform(0.6, 0.9) / (1 + 0.5 * (count - 1))
    gap_s = (length_s + 0.1, length_s + 0.5)
    out = np.zeros(n)
    for onset in _event_times(rng, count, _first_onset(rng, n, sr, 1.0), gap_s):
        _place(out, _breath_burst(rng, sr, length_s) * rng.uniform(0.6, 1.0), int(onset * sr))
    return _finish(rng, out, sr)


def _breath_burst(rng: np.random.Generator, sr: int, length_s: float) -> np.ndarray:
    """Noise through three formant resonances plus breath, with a quick attack and a decay."""
    n = int(length_s * sr)
    noise = rng.standard_normal(n, dtype=np.float32)
    centres = (rng.uniform(500, 1000), rng.uniform(1200, 2500), rng.uniform(2500, 4000))
    resonances = sum(
        gain * _unit_peak(_formant(noise, freq, rng.uniform(80, 250), sr))
        for freq, gain in zip(centres, (1.0, 0.7, 0.5))
    )
    breath = _unit_peak(_band_noise(rng, n, 1500, 7000, sr)) * rng.uniform(0.2, 0.4)
    envelope = _attack_decay(n, rng.uniform(0.01, 0.06), length_s * rng.uniform(0.3, 0.45), sr)
    return (resonances + breath) * envelope


def _formant(noise: np.ndarray, freq: float, bandwidth: float, sr: int) -> np.ndarray:
    """A band-pass resonance (two sections) of the given centre and bandwidth (Hz) on noise."""
    freq = min(freq, 0.4 * sr)
    return sosfilt(np.repeat([_biquad("bandpass", freq, freq / bandwidth, sr)], 2, axis=0), noise)


RECIPES: dict[str, Recipe] = {
    "dog_bark": dog_bark,
    "footstep": footstep,
    "gunshot": gunshot,
    "keyboard": keyboard,
    "moving_motor_vehicle": moving_motor_vehicle,
    "rain": rain,
    "sneeze_cough": sneeze_cough,
}


# ---------------------------------------------------------------------------------------------
# Clips, seeds and the set on disk


def render_clip(class_key: str, seed: int, sample_rate: int, num_samples: int) -> np.ndarray:
    """One clip of the class with this recipe key, fully determined by seed."""
    if class_key not in RECIPES:
        raise DataError(
            f"no synthetic recipe for class '{class_key}'; available recipes: {', '.join(RECIPES)}"
        )
    if sample_rate < MIN_SAMPLE_RATE or num_samples < 1:
        raise DataError(
            f"synthetic clips need a sample rate of at least {MIN_SAMPLE_RATE} Hz and at least one "
            f"sample; got {sample_rate} Hz and {num_samples} samples"
        )
    return RECIPES[class_key](np.random.default_rng(seed), sample_rate, num_samples)


def clip_seed(seed: int, split: str, class_index: int, index: int) -> int:
    """The seed of one clip, independent of every other clip's (split is e.g. "dev" or "eval")."""
    split_key = int.from_bytes(split.encode("utf-8"), "little")
    sequence = np.random.SeedSequence(seed, spawn_key=(split_key, class_index, index))
    return int(sequence.generate_state(1, dtype=np.uint64)[0])


@dataclass(frozen=True)
class SyntheticSet:
    """Where a written synthetic set lies: the development and the evaluation layout folders."""

    dev_dir: Path
    eval_dir: Path


def write_synthetic_set(
    root: Path,
    class_names: Sequence[str],
    eval_class_names: Sequence[str],
    train_per_class: int | Sequence[int],
    reference_per_class: int,
    seed: int,
    sample_rate: int = 22050,
    num_samples: int = 88200,
    progress: bool = True,
) -> SyntheticSet:
    """Write the dev (training) and eval (reference) sets under root, in the DCASE layouts.

    train_per_class: one count for every class, or one count per class (DCASE_DEV_COUNTS: the
    DCASE 2023 development set's).

    Class i is rendered by RECIPES[eval_class_names[i]]. Files are written atomically; rewriting
    gives the same bytes, and numbered clips left over from a larger earlier set are removed, so
    each class folder holds exactly this set.
    """
    _check_classes(class_names, eval_class_names)
    synthetic = SyntheticSet(dev_dir=Path(root) / "dev", eval_dir=Path(root) / "eval")
    train_counts = _per_class(train_per_class, len(class_names))
    splits = (
        ("dev", synthetic.dev_dir, class_names, train_counts),
        ("eval", synthetic.eval_dir, eval_class_names, _per_class(reference_per_class, len(class_names))),
    )
    total = sum(sum(counts) for *_, counts in splits)
    with tqdm(total=total, desc="synthetic set", unit="clip", disable=not progress) as bar:
        for split, split_dir, folder_names, counts in splits:
            for class_index, (folder, key) in enumerate(zip(folder_names, eval_class_names)):
                seeds = [clip_seed(seed, split, class_index, i) for i in range(1, counts[class_index] + 1)]
                _write_class(split_dir / folder, key, seeds, sample_rate, num_samples, bar)
    return synthetic


def _per_class(count: int | Sequence[int], classes: int) -> tuple[int, ...]:
    counts = (count,) * classes if isinstance(count, int) else tuple(count)
    if len(counts) != classes:
        raise DataError(f"synthetic set: {len(counts)} clip counts for {classes} classes; give one count, or one per class")
    return counts


def _write_class(
    folder: Path, class_key: str, seeds: list[int], sample_rate: int, num_samples: int, bar: tqdm
) -> None:
    """Write clip i (1-based) of one class from seeds[i - 1]; drop numbered clips beyond them."""
    for index, seed in enumerate(seeds, start=1):
        audio = render_clip(class_key, seed, sample_rate, num_samples)
        write_wav(folder / clip_name(index), audio, sample_rate)
        bar.update()
    _remove_stale_clips(folder, len(seeds))


def clip_name(index: int) -> str:
    """The file name of clip index (1-based): 0001.wav, 0002.wav, ..."""
    return f"{index:0{CLIP_NAME_DIGITS}d}.wav"


def _check_classes(class_names: Sequence[str], eval_class_names: Sequence[str]) -> None:
    if len(class_names) != len(eval_class_names):
        raise DataError(
            f"synthetic set: {len(class_names)} class names but {len(eval_class_names)} "
            "eval class names; give one eval name per class, in the same order"
        )
    missing = [name for name in eval_class_names if name not in RECIPES]
    if missing:
        raise DataError(
            f"no synthetic recipe for class {', '.join(repr(m) for m in missing)}; "
            f"available recipes: {', '.join(RECIPES)} (use real audio for other classes)"
        )


def _remove_stale_clips(folder: Path, count: int) -> None:
    """Delete numbered clips (NNNN.wav) beyond count that an earlier, larger set left behind."""
    for path in folder.glob("*.wav"):
        stem = path.stem
        if len(stem) >= CLIP_NAME_DIGITS and stem.isdigit() and int(stem) > count:
            path.unlink()
