"""The pictures of foley's HTML reports, as small PNG files (matplotlib, Agg backend; no display).

A spectrogram is the log-mel itself as pixels (one row per mel bin, low frequencies at the bottom;
neighbouring frames averaged down to at most SPECTROGRAM_COLUMNS columns) in one fixed colour range,
so two clips' images compare at a glance. Training curves and
codebook usage are small figures of a few panels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from foley.util.atomic import atomic_path

SPECTROGRAM_RANGE = (math.log(1e-5), 2.0)  # log-mel floor (the clamp of the one log-mel) to a loud clip's peak
SPECTROGRAM_COLOURS = "magma"
SPECTROGRAM_COLUMNS = 200
PANEL_INCHES = (3.4, 2.4)
DPI = 80


@dataclass(frozen=True)
class Curve:
    name: str  # a metrics.csv column, e.g. "loss" or "val/loss" (drawn dashed, in its training curve's colour)
    x: np.ndarray
    y: np.ndarray


@dataclass(frozen=True)
class Panel:
    title: str
    curves: tuple[Curve, ...]
    log_y: bool = False  # a log scale where the values span more than a factor of ten


def spectrogram_levels(mel: np.ndarray) -> np.ndarray:
    """A log-mel (n_mels, frames) -> colour levels 0..255 (n_mels, columns) uint8, row 0 the highest mel bin:
    SPECTROGRAM_RANGE mapped linearly onto 0..255 (clipped), frames averaged in groups to fit the columns."""
    mel = np.asarray(mel, np.float64)
    pool = math.ceil(mel.shape[1] / SPECTROGRAM_COLUMNS)
    columns = mel.shape[1] // pool
    pooled = mel[:, : columns * pool].reshape(mel.shape[0], columns, pool).mean(axis=2)
    low, high = SPECTROGRAM_RANGE
    return (np.clip((pooled - low) / (high - low), 0.0, 1.0)[::-1] * 255).round().astype(np.uint8)


def spectrogram_png(mel: np.ndarray, path: str | Path) -> None:
    """A log-mel (n_mels, frames) as a small palette PNG: spectrogram_levels through the colour map."""
    from matplotlib import colormaps
    from PIL import Image

    palette = (colormaps[SPECTROGRAM_COLOURS](np.arange(256) / 255)[:, :3] * 255).round().astype(np.uint8)
    picture = Image.fromarray(spectrogram_levels(mel), mode="L").convert("P")
    picture.putpalette(palette.reshape(-1).tolist())
    with atomic_path(path) as tmp:
        picture.save(tmp, format="PNG", optimize=True)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _base_name(name: str) -> str:
    return name.removeprefix("val/")


def _spans_decades(curves: Sequence[Curve]) -> bool:
    """Whether the curves' values are all positive and span more than a factor of ten (worth a log scale)."""
    values = np.concatenate([c.y[np.isfinite(c.y)] for c in curves])
    return bool(values.size and values.min() > 0 and values.max() > 10 * values.min())


def curves_png(panels: Sequence[Panel], path: str | Path, x_label: str = "epoch") -> None:
    """Panels side by side (four to a row); a validation curve ("val/...") shares its training curve's colour."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    columns = min(4, len(panels))
    rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(PANEL_INCHES[0] * columns, PANEL_INCHES[1] * rows), squeeze=False)
    names = sorted({_base_name(c.name) for panel in panels for c in panel.curves})
    colours = {name: f"C{i % 10}" for i, name in enumerate(names)}
    for ax, panel in zip(axes.flat, panels):
        for curve in panel.curves:
            dashed = curve.name.startswith("val/")
            ax.plot(curve.x, curve.y, "--" if dashed else "-", color=colours[_base_name(curve.name)], label=curve.name,
                    marker="." if len(curve.x) < 30 else None)
        if panel.log_y and _spans_decades(panel.curves):
            ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(panel.title, fontsize=9)
        ax.set_xlabel(x_label, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    _save(fig, path)


def usage_png(counts: Sequence[np.ndarray], path: str | Path) -> None:
    """Per level, how often each code was chosen, most used first (log scale); unused codes drawn as zero."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(counts), figsize=(PANEL_INCHES[0] * len(counts), PANEL_INCHES[1]), squeeze=False)
    for level, (ax, level_counts) in enumerate(zip(axes.flat, counts)):
        ranked = np.sort(np.asarray(level_counts))[::-1]
        used = int((ranked > 0).sum())
        ax.bar(np.arange(len(ranked)), ranked, width=1.0, color="C0")
        if used:
            ax.set_yscale("log")
        ax.set_title(f"level {level}: {used} of {len(ranked)} codes used", fontsize=9)
        ax.set_xlabel("codes, most used first", fontsize=8)
        ax.set_ylabel("positions", fontsize=8)
        ax.tick_params(labelsize=7)
    _save(fig, path)


def _save(fig, path: str | Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    plt.close(fig)
