"""The work behind `foley vocode` and `foley bench vocoder` (imported once their arguments are checked)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from foley.audio.clips import write_wav
from foley.config import Config
from foley.models.hifigan import Generator, HiFiGANConfig
from foley.util.errors import RunError
from foley.vocoders.base import Vocoder, vocode_all
from foley.vocoders.griffinlim import GriffinLim
from foley.vocoders.hifigan import DCASE_HIFIGAN, HiFiGANVocoder, benchmark_vocoder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MelInput:
    """One mel to vocode and the wav it becomes."""

    mel: np.ndarray  # (n_mels, frames) float32
    name: str  # output file name


def command_vocoder(hifigan: Path | None, hifigan_config: Path | None, config: Config,
                    batch_size: int) -> tuple[Vocoder, int, str]:
    """`foley vocode`'s vocoder (the given HiFi-GAN, else Griffin-Lim with the config's settings), the
    n_mels it takes and where that number comes from."""
    if hifigan is not None and hifigan_config is not None:
        vocoder = HiFiGANVocoder.from_files(hifigan, hifigan_config, batch_size=batch_size)
        return vocoder, vocoder.num_mels, f"HiFi-GAN config '{hifigan_config}'"
    griffinlim = GriffinLim(config.mel, config.audio.sample_rate, config.vocoder.griffinlim, seed=config.seed)
    return griffinlim, config.mel.n_mels, f"config '{config.name}' (mel.n_mels)"


def mel_files(source: Path) -> list[Path]:
    """The .npy file `source`, or the .npy files directly inside the folder `source`, sorted."""
    if source.is_dir():
        files = sorted(p for p in source.glob("*.npy") if p.is_file())
        if not files:
            raise RunError(f"folder '{source}' holds no .npy files (expected log-mels of shape (n_mels, frames) "
                           "or (N, n_mels, frames))")
        return files
    if not source.is_file():
        raise RunError(f"input '{source}' does not exist; give a .npy log-mel (n_mels x frames or N x n_mels x frames) "
                       "or a folder of them")
    return [source]


def read_mels(path: Path, n_mels: int, n_mels_from: str) -> list[MelInput]:
    """The mels of one .npy file: (n_mels, T) -> <stem>.wav, (N, n_mels, T) -> <stem>_0001.wav ..."""
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise RunError(f"'{path}' is not a .npy array ({str(err).splitlines()[0]})") from None
    expected = f"expected ({n_mels}, frames) or (N, {n_mels}, frames), n_mels {n_mels} from {n_mels_from}"
    if array.ndim not in (2, 3) or array.shape[-2] != n_mels or array.shape[-1] < 1 or array.shape[0] < 1:
        raise RunError(f"'{path}' holds an array of shape {array.shape}; {expected}")
    if not np.issubdtype(array.dtype, np.number) or not np.isfinite(array).all():
        raise RunError(f"'{path}' must hold finite numbers (log-mels), found dtype {array.dtype} or NaN/infinity")
    mels = array.astype(np.float32)
    if mels.ndim == 2:
        return [MelInput(mels, f"{path.stem}.wav")]
    return [MelInput(mel, f"{path.stem}_{i + 1:04d}.wav") for i, mel in enumerate(mels)]


def vocode_files(source: Path, vocoder: Vocoder, n_mels: int, n_mels_from: str, out: Path, batch_size: int,
                 force: bool) -> list[Path]:
    """Vocode every mel of `source` into out/<name>.wav (16-bit, the vocoder's rate); never overwrites unless forced."""
    inputs = [item for path in mel_files(source) for item in read_mels(path, n_mels, n_mels_from)]
    targets = [out / item.name for item in inputs]
    existing = [t for t in targets if t.exists()]
    if existing and not force:
        raise RunError(f"{existing[0]} already exists ({len(existing)} wavs would be replaced); use another --out or --force")
    waves = vocode_all(vocoder, [item.mel for item in inputs], batch_size)
    for target, wave in zip(targets, waves):
        write_wav(target, wave, vocoder.sample_rate)
    return targets


def dcase_vocoder(seed: int = 0) -> HiFiGANVocoder:
    """A HiFi-GAN of the DCASE baseline's config with random weights (speed is all it is for)."""
    torch.manual_seed(seed)
    return HiFiGANVocoder(Generator(HiFiGANConfig.from_dict(DCASE_HIFIGAN)), name="hifigan(DCASE config, random weights)")


def bench_vocoder_table(batch_sizes: tuple[int, ...], device: torch.device, repeats: int) -> str:
    """`foley bench vocoder`'s report: clips per second per batch size, as a Markdown table."""
    vocoder = dcase_vocoder()
    rows = benchmark_vocoder(vocoder, batch_sizes, frames=344, device=device, repeats=repeats)
    parameters = sum(p.numel() for p in vocoder.generator.parameters()) / 1e6
    lines = [
        f"HiFi-GAN, DCASE baseline config ({parameters:.2f} M parameters after folding weight norm, random weights), "
        f"80 x 344 mels (4 s clips), device {device}, torch threads {torch.get_num_threads()}, mean of {repeats} calls",
        "",
        "| batch size | clips/s | s per batch | x real time |",
        "|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(f"| {row['batch_size']} | {row['clips_per_second']:.2f} | {row['seconds_per_batch']:.3f} | "
                     f"{row['realtime_factor']:.1f} |")
    return "\n".join(lines)
