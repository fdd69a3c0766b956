"""Clips to listen to on a report page: per clip a log-mel spectrogram (PNG) and a player, a row per set
(generated, reference, each floor) so that the sets of one class sit side by side."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from foley.audio.mel import log_mel
from foley.config import MelConfig
from foley.evaluate.html import clip_figure, clip_row
from foley.evaluate.plots import spectrogram_png
from foley.stages.report.files import href


@dataclass(frozen=True)
class Clip:
    caption: str
    audio: Path | None  # the file to play; None when it cannot be found
    mel: np.ndarray | None = None  # its log-mel when the run saved it; else computed from `audio`


@dataclass(frozen=True)
class ClipSet:
    label: str  # "generated", "reference", "vocoder floor", ...
    clips: tuple[Clip, ...]  # those shown
    total: int  # clips in the set (more than shown when the page shows a few)
    remark: str = ""

    @property
    def shown(self) -> str:
        return f"{len(self.clips)} of {self.total}" if self.total > len(self.clips) else str(self.total)


def folder_set(label: str, folder: Path, cap: int) -> ClipSet | None:
    """The first `cap` .wav files of a folder (None when it holds none)."""
    files = sorted(folder.glob("*.wav")) if folder.is_dir() else []
    if not files:
        return None
    return ClipSet(label, tuple(Clip(f.stem, f) for f in files[:cap]), len(files))


def clip_mel(clip: Clip, mel: MelConfig) -> np.ndarray:
    """The clip's log-mel: the saved one, or the one log-mel of its (mono) audio at the file's rate."""
    if clip.mel is not None:
        return clip.mel
    audio, rate = sf.read(str(clip.audio), dtype="float32", always_2d=True)
    return log_mel(torch.from_numpy(audio.mean(axis=1)), mel, rate).numpy()


def render_sets(sets: Sequence[ClipSet], page_dir: Path, image_dir: Path, mel: MelConfig) -> str:
    """The sets as rows of clips; spectrograms are written to image_dir/<set>/<clip>.png."""
    rows = []
    for clip_set in sets:
        figures = []
        for i, clip in enumerate(clip_set.clips):
            image = None
            if clip.mel is not None or clip.audio is not None:
                image = image_dir / _slug(clip_set.label) / f"{i + 1:03d}_{_slug(clip.caption)}.png"
                spectrogram_png(clip_mel(clip, mel), image)
            figures.append(clip_figure(image and href(image, page_dir), clip.audio and href(clip.audio, page_dir),
                                       clip.caption))
        rows.append(clip_row(f"{clip_set.label} ({clip_set.shown})", figures, clip_set.remark))
    return "".join(rows)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)
