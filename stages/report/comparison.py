"""`foley compare`'s page, fad_comparison.html: the runs' scores per class in the RVQ paper's Table-2
layout (classes down, runs across) with bars and intervals, the bar chart, and per class the runs'
generated clips side by side. Built from the runs' files (evaluate/fad.csv, sample/samples)."""

from __future__ import annotations

import math
import shutil
from collections.abc import Sequence
from pathlib import Path

from foley.evaluate.html import bar_td, heading, image, note, page, paragraph, section, table, td
from foley.stages.artifacts import artifact
from foley.stages.report.files import MEAN_ROWS, href, is_number, read_rows, run_settings
from foley.stages.report.listen import folder_set, render_sets
from foley.stages.report.scores import interval_columns, number
from foley.util.atomic import write_text_atomic

PAGE = "fad_comparison.html"
CHART = "fad_comparison.png"
FILES = "fad_comparison_files"
CLIPS = 3  # per run and class
METRICS = ("fad", "kad")  # and every column with an interval (<name>_ci_low, <name>_ci_high)
Score = tuple[float, float | None, float | None]  # value, interval low, high


def run_folder(source: Path) -> Path | None:
    """The run folder of a compare source (a run folder, or a run's evaluate/fad.csv); None for another CSV."""
    if source.is_dir():
        return source
    folder = source.parent.parent
    return folder if source.parent.name == "evaluate" and (folder / "config.yaml").is_file() else None


def fad_table(source: Path) -> Path:
    return source if source.is_file() else artifact(source, "evaluate", "fad.csv", finished=False)


def run_scores(path: Path) -> dict[tuple[str, str], dict[str, Score]]:
    """(embedder, metric) -> class -> score, from a fad.csv (the mean row under the key "average")."""
    rows = read_rows(path) or []
    fields = list(rows[0]) if rows else []
    metrics = [f for f in fields if f in METRICS or interval_columns(f, fields)]
    scores: dict[tuple[str, str], dict[str, Score]] = {}
    for row in rows:
        for metric in (m for m in metrics if is_number(row[m])):
            low, high = interval_columns(metric, fields) or ("", "")
            name = "average" if row["class"] in MEAN_ROWS else row["class"]
            scores.setdefault((row.get("embedder", ""), metric), {})[name] = (
                float(row[metric]), _optional(row.get(low, "")), _optional(row.get(high, "")))
    return scores


def _optional(text: str) -> float | None:
    return float(text) if is_number(text) else None


def score_tables(labels: Sequence[str], scores: Sequence[dict]) -> str:
    """A table per (embedder, metric) every run has: classes down, runs across, bars on one scale."""
    keys = [key for key in scores[0] if all(key in s for s in scores)]
    parts = []
    for embedder, metric in keys:
        classes = list(scores[0][(embedder, metric)])
        cells = [[s[(embedder, metric)].get(name) for s in scores] for name in classes]
        scale = max((max(v[0], v[2] or v[0]) for row in cells for v in row if v and math.isfinite(v[0])), default=0.0)
        rows = [[td(name)] + [_score_td(v, scale) for v in row] for name, row in zip(classes, cells)]
        parts.append(heading(f"{metric.upper()}, embedder {embedder}" if embedder else metric.upper()))
        parts.append(table(("class", *labels), rows, ["mean" if name == "average" else "" for name in classes]))
    if not keys:
        parts.append(note("No score that every run computed."))
    return "".join(parts)


def _score_td(score: Score | None, scale: float) -> str:
    if score is None:
        return td("")
    value, low, high = score
    interval = f" [{number(low)}, {number(high)}]" if low is not None and high is not None else ""
    return bar_td(value, scale, number(value) + interval, low, high)


def clips_section(labels: Sequence[str], runs: Sequence[Path | None], out_dir: Path) -> str:
    """Per class, a row of each run's first generated clips."""
    settings = [run_settings(run) for run in runs if run is not None]
    names = settings[0].class_names if settings else ()
    parts = [note(f"The first {CLIPS} generated clips of each run per class (sample/samples/<class>/).")]
    parts += [note(f"{label}: no run folder, so no clips.") for label, run in zip(labels, runs) if run is None]
    for name in names:
        sets = [folder_set(label, artifact(run, "sample", "samples", finished=False) / name, CLIPS)
                for label, run in zip(labels, runs) if run is not None]
        parts.append(f'<div class="class" id="class-{name}">' + heading(name))
        parts.append(render_sets([s for s in sets if s is not None], out_dir, out_dir / FILES / name, settings[0].mel)
                     + "</div>\n")
    return "".join(parts)


def write_comparison_page(sources: Sequence[str | Path], labels: Sequence[str], out_dir: str | Path) -> Path:
    """Write out_dir/fad_comparison.html for the runs (run folders or fad.csv files) under their labels."""
    sources, out_dir = [Path(s) for s in sources], Path(out_dir)
    runs = [run_folder(s) for s in sources]
    shutil.rmtree(out_dir / FILES, ignore_errors=True)
    scores = [run_scores(fad_table(s)) for s in sources]
    chart = out_dir / CHART
    first = read_rows(fad_table(sources[0])) or [{}]
    body = [paragraph("; ".join(f"{k}: {first[0][k]}" for k in ("protocol", "reference", "reference_id") if k in first[0])),
            note("Lower is better; [low, high]: bootstrap interval where the run computed one; bars share one scale "
                 "per table; average: the mean over the classes."),
            score_tables(labels, scores)]
    body.append(image(href(chart, out_dir), "FAD per class and run") if chart.is_file() else note(f"No {CHART}."))
    listen = clips_section(labels, runs, out_dir)
    html = section("scores", "Scores per class", "".join(body)) + section("listen", "Listen", listen)
    title, subtitle = "foley compare: " + ", ".join(labels), "runs: " + ", ".join(map(str, sources))
    path = out_dir / PAGE
    write_text_atomic(path, page(title, subtitle, [("scores", "Scores"), ("listen", "Listen")], html))
    return path
