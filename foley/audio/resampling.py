"""The two resamplers: soxr for the clip policy, and fadtk's windowed-sinc for the FAD `standard` protocol.

- `resample` (clip policy, prepare and HiFi-GAN training): libsoxr through python-soxr at its "HQ"
  quality, the resampler librosa uses by default (res_type "soxr_hq").
- `kaiser_best` (FAD `standard` protocol): the resampler fadtk (microsoft/fadtk since Oct 2023, the
  DCASE 2024 Task 7 fork, kadtk) applies before embedding: torchaudio's "sinc_interp_kaiser" with
  lowpass_filter_width 64, rolloff 0.9475937167399596 and beta 14.769656459379492 (the pre-0.3
  resampy "kaiser_best" constants). With the rates reduced by their gcd to orig and new, output
  sample j of every block of `new` is

      y[k * new + j] = sum_i x[k * orig + i] * h_j(i),
      h_j(i) = sinc(pi t) * I0(beta * sqrt(1 - (t / 64)^2)) / I0(beta) * base / orig,
      t = clamp((i / orig - j / new) * base, -64, 64),   base = min(orig, new) * rolloff,

  over taps i = -width .. width + orig - 1, width = ceil(64 * orig / base), x zero outside the
  clip; the output holds ceil(new * T / orig) samples. As in torchaudio, beta and I0(beta) are float32
  values; the rest is float64 here (fadtk's transform rounds the filters to float32 as well).
"""

from __future__ import annotations

import math

import numpy as np
import soxr

SOXR_QUALITY = "HQ"
CLIP_RESAMPLER = f"soxr {SOXR_QUALITY} (python-soxr {soxr.__version__})"

KAISER_BEST_ZEROS = 64
KAISER_BEST_ROLLOFF = 0.9475937167399596
KAISER_BEST_BETA = 14.769656459379492
FAD_RESAMPLER = "torchaudio sinc_interp_kaiser: 64 zero crossings, rolloff 0.9475937167399596, beta 14.769656459379492 (fadtk)"
PHASES_PER_CALL = 256  # output phases whose filters are built and applied at once: bounds the kernel's memory


def resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Mono float audio (T,) from rate_in to rate_out Hz with soxr HQ, as float32."""
    if rate_in == rate_out:
        return np.asarray(audio, dtype=np.float32)
    return soxr.resample(np.asarray(audio, dtype=np.float32), rate_in, rate_out, quality=SOXR_QUALITY)


def kaiser_best(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Mono audio (T,) from rate_in to rate_out Hz as fadtk resamples it, in float64."""
    x = np.asarray(audio, dtype=np.float64)
    if rate_in == rate_out:
        return x
    g = math.gcd(rate_in, rate_out)
    orig, new = rate_in // g, rate_out // g
    width = math.ceil(KAISER_BEST_ZEROS * orig / (min(orig, new) * KAISER_BEST_ROLLOFF))
    padded = np.pad(x, (width, width + orig))
    frames = np.lib.stride_tricks.sliding_window_view(padded, 2 * width + orig)[::orig]
    out = np.empty((frames.shape[0], new))
    for first in range(0, new, PHASES_PER_CALL):
        phases = np.arange(first, min(new, first + PHASES_PER_CALL))
        out[:, phases] = frames @ _kaiser_filters(orig, new, width, phases).T
    return out.reshape(-1)[: math.ceil(new * x.size / orig)]


def _kaiser_filters(orig: int, new: int, width: int, phases: np.ndarray) -> np.ndarray:
    """The filters h_j (len(phases), 2 * width + orig) of the given output phases j."""
    base = min(orig, new) * KAISER_BEST_ROLLOFF
    taps = np.arange(-width, width + orig) / orig
    t = np.clip((taps[None, :] - phases[:, None] / new) * base, -KAISER_BEST_ZEROS, KAISER_BEST_ZEROS)
    beta = float(np.float32(KAISER_BEST_BETA))  # torchaudio holds beta and I0(beta) in float32
    window = np.i0(beta * np.sqrt(1 - (t / KAISER_BEST_ZEROS) ** 2)) / float(np.float32(np.i0(beta)))
    return np.sinc(t) * window * (base / orig)
