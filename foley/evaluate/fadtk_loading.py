"""How the DCASE 2024 Task 7 fadtk fork loads a clip before embedding it (fadtk/fad.py, load_audio):

1. the file read as float32 in [-1, 1] (torchaudio.load; 16-bit PCM divided by 32768, as soundfile does);
2. channels averaged (before resampling);
3. resampled to the embedder's rate with torchaudio's Kaiser sinc filter (foley.audio.kaiser_resample)
   when the rates differ;
4. written as a 16-bit PCM wav and read back as int16 / 32768: quantised to 16 bits. foley quantises
   round(clip(x * 32768, -32768, 32767)) (the scaling of torchaudio's ffmpeg and sox backends), so a
   16-bit clip already at the embedder's rate comes through unchanged. Which backend DCASE ran is
   unknown; libsndfile's would scale by 32767: at most one step of 16-bit difference and a gain of
   0.003 %.
"""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf

from foley.audio.kaiser_resample import resample_kaiser
from foley.util.errors import AudioError

PCM16_SCALE = 32768.0


def pcm16_round_trip(samples: np.ndarray) -> np.ndarray:
    """Float samples -> the 16-bit values a PCM wav stores -> float64 in [-1, 1)."""
    values = np.clip(np.round(np.asarray(samples, dtype=np.float64) * PCM16_SCALE), -PCM16_SCALE, PCM16_SCALE - 1)
    return values / PCM16_SCALE


def fadtk_samples(samples: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    """Float samples (T,) or (T, channels) at rate -> mono float64 at target_rate, 16-bit quantised."""
    x = np.asarray(samples, dtype=np.float32)
    mono = x.mean(axis=1, dtype=np.float32) if x.ndim == 2 else x
    return pcm16_round_trip(resample_kaiser(mono, rate, target_rate))


def read_fadtk(data: bytes, target_rate: int) -> np.ndarray:
    """A sound file's bytes -> the samples the fork embeds (AudioError when unreadable)."""
    try:
        samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as err:  # libsndfile reports unreadable files through many error types
        raise AudioError(f"unreadable as a sound file ({err})") from None
    return fadtk_samples(samples, rate, target_rate)
