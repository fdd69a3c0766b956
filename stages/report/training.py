"""The report's training and codebook sections: curves from the trainers' metrics.csv, codebook usage
per level from extract_codes' codes, bitrate and entropy from its manifest."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from foley.evaluate.html import heading, image, note, number_td, table, td
from foley.evaluate.plots import Curve, Panel, curves_png, usage_png
from foley.quantize.ema import codebook_usage
from foley.quantize.stacking import unstack_levels
from foley.stages.report.files import href, is_number, manifest, read_rows, run_file

TRAINERS = {"train_vqvae": "Autoencoder", "train_prior": "Prior", "train_vocoder": "Vocoder"}
X_COLUMNS = ("epoch", "step")
# metrics.csv columns by what they measure: (panel title, pattern a column's name holds, log scale);
# columns that match none are losses
GROUPS = (
    ("accuracy", r"accuracy", False),
    ("mel L1", r"mel_l1", True),
    ("codebook perplexity per level", r"perplexity", False),
    ("unused codes per level", r"unused", False),
    ("learning rate", r"(^|/)lr($|_)", True),
)
LOSSES = "losses"
PER_LEVEL_DETAILS = ("perplexity", "unused_codes", "entropy_bits_per_code")  # and every *_per_level


@dataclass(frozen=True)
class Pages:
    """Where a page lives and where its pictures go."""

    page_dir: Path
    image_dir: Path


def _group(column: str) -> str:
    return next((title for title, pattern, _ in GROUPS if re.search(pattern, column)), LOSSES)


def metric_panels(rows: list[dict[str, str]]) -> list[Panel]:
    """One panel per group of columns (losses first), each column a curve over the epochs (finite points)."""
    x_name = next((name for name in X_COLUMNS if name in rows[0]), None)
    x = np.array([float(r[x_name]) if x_name else i + 1 for i, r in enumerate(rows)])
    grouped: dict[str, list[Curve]] = {}
    for column in rows[0]:
        if column in X_COLUMNS:
            continue
        y = np.array([float(r[column]) if is_number(r[column]) else np.nan for r in rows])
        finite = np.isfinite(y)
        if finite.any():
            grouped.setdefault(_group(column), []).append(Curve(column, x[finite], y[finite]))
    log_y = {title: log for title, _, log in GROUPS} | {LOSSES: True}
    order = [LOSSES] + [title for title, _, _ in GROUPS]
    return [Panel(title, tuple(grouped[title]), log_y[title]) for title in order if title in grouped]


def training_section(run_dir: Path, pages: Pages) -> str:
    parts = []
    for stage, title in TRAINERS.items():
        parts.append(heading(title, f"training-{stage}"))
        path = run_file(run_dir, stage, "metrics.csv")
        rows = read_rows(path)
        if rows is None:
            reason = ((manifest(run_dir, stage) or {}).get("details") or {}).get("reason")
            parts.append(note(f"No curves: {stage} wrote no metrics.csv" + (f" ({reason})." if reason else ".")))
            continue
        picture = pages.image_dir / f"curves_{stage}.png"
        curves_png(metric_panels(rows), picture)
        parts.append(image(href(picture, pages.page_dir), f"{title} training curves (from {stage}/metrics.csv)"))
        parts.append(note(f"{stage}/metrics.csv: {len(rows)} epochs; dashed: validation."))
    return "".join(parts)


def _per_level(details: dict) -> dict[str, list]:
    levels = details.get("levels")
    return {key: value for key, value in details.items()
            if isinstance(value, list) and len(value) == levels and (key in PER_LEVEL_DETAILS or key.endswith("_per_level"))}


def _format(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def codebook_section(run_dir: Path, pages: Pages) -> str:
    details = (manifest(run_dir, "extract_codes") or {}).get("details")
    if not details:
        return note("Not shown: extract_codes has not finished (no codes, bitrate or entropy yet).")
    per_level = _per_level(details)
    summary = [(key, value) for key, value in details.items() if key not in per_level]
    parts = [table(("extract_codes", "value"), [(td(key), td(_format(value))) for key, value in summary])]
    if per_level:
        rows = [[number_td(level)] + [number_td(_format(values[level])) for values in per_level.values()]
                for level in range(details["levels"])]
        parts.append(table(("level", *per_level), rows))
    parts.append(_usage_picture(run_dir, details, pages))
    levels_rows = read_rows(run_file(run_dir, "extract_codes", "levels.csv"))
    if levels_rows is not None:
        parts.append(heading("Decoding the first k levels (extract_codes/levels.csv)"))
        parts.append(table(tuple(levels_rows[0]), [[number_td(v) if is_number(v) else td(v) for v in r.values()]
                                                   for r in levels_rows]))
    return "".join(parts)


def _usage_picture(run_dir: Path, details: dict, pages: Pages) -> str:
    path = run_file(run_dir, "extract_codes", "codes.npy")
    if not path.is_file():
        return note("No usage histogram: extract_codes/codes.npy is missing.")
    maps = torch.from_numpy(np.load(path).astype(np.int64))
    codes = unstack_levels(maps, details["levels"], details["stack"])
    counts = codebook_usage(codes, details["codebook_size"])["counts"].numpy()
    picture = pages.image_dir / "codebook_usage.png"
    usage_png(list(counts), picture)
    return (image(href(picture, pages.page_dir), "codebook usage per level")
            + note(f"How often each code is chosen over the code maps of the {len(maps)} training and validation "
                   "clips (extract_codes/codes.npy), per level, most used first."))
