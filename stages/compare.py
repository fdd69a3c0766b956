"""`foley compare`: the per-class FAD of several runs side by side, as the RVQ paper's Table 2.

Rows are the classes and their average, columns the runs; a cell is the FAD, with its bootstrap
interval when the run computed one. A group of seed runs (`foley run --seeds`) is one column: the
mean over its seeds ± their sample standard deviation. Runs whose FADs were made with a different
embedder, protocol or reference (content id) are refused: their numbers are not on one scale.
Writes fad_comparison.md, fad_comparison.csv and fad_comparison.png (grouped bars, Agg backend),
and codes_comparison.csv: per run (per seed run of a group), its codes' bitrate, entropy, perplexity,
unused codes, reconstruction error and floors (foley.stages.compare_codes), also the markdown's last section.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from foley.stages.compare_codes import CODES_STEM, codes_rows, render_codes_markdown
from foley.stages.pipeline import artifact
from foley.stages.seeds import is_group, read_group
from foley.util.atomic import atomic_path, write_csv, write_text_atomic
from foley.util.errors import RunError

STEM = "fad_comparison"
AVERAGE = "average"
SCALE_KEYS = ("embedder", "protocol", "reference_id")


@dataclass(frozen=True)
class RunFAD:
    """One run's fad.csv: per class (and the mean, last) the FAD and its interval when computed."""

    label: str
    classes: tuple[str, ...]  # the run's classes, then AVERAGE
    fad: tuple[float, ...]
    low: tuple[float | None, ...]
    high: tuple[float | None, ...]
    clips: tuple[int, ...]
    scale: dict[str, str]  # embedder, protocol, reference_id
    reference: str
    spread: tuple[float, ...] | None = None  # a group's sample standard deviation over its seeds
    seeds: int = 1


def fad_csv_path(source: Path) -> Path:
    """A run folder's evaluate/fad.csv, or source itself when it is a CSV file."""
    path = source if source.is_file() else artifact(source, "evaluate", "fad.csv", finished=False)
    if not path.is_file():
        raise RunError(f"'{source}' has no FAD table (expected {path}); run `foley run --stages evaluate` there first")
    return path


def _optional(text: str) -> float | None:
    return float(text) if text else None


def read_run_fad(source: Path, label: str) -> RunFAD:
    """A run's FADs, or a seed group's mean and spread over its runs."""
    return read_group_fad(source, label) if is_group(source) else read_one_fad(source, label)


def read_group_fad(group: Path, label: str) -> RunFAD:
    record = read_group(group)
    runs = [read_one_fad(group / name, f"{label} seed {seed}") for seed, name in zip(record["seeds"], record["runs"])]
    require_comparable(runs)
    fads = np.array([run.fad for run in runs])
    spread = fads.std(axis=0, ddof=1) if len(runs) > 1 else np.zeros(fads.shape[1])
    first = runs[0]
    none = (None,) * len(first.fad)
    return RunFAD(label, first.classes, tuple(map(float, fads.mean(axis=0))), none, none, first.clips, first.scale,
                  first.reference, tuple(map(float, spread)), len(runs))


def read_one_fad(source: Path, label: str) -> RunFAD:
    path = fad_csv_path(source)
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    missing = [key for key in (*SCALE_KEYS, "fad", "class") if rows and key not in rows[0]]
    if not rows or rows[-1]["class"] != "mean" or missing:
        raise RunError(f"'{path}' is not a foley fad.csv with a mean row and {', '.join(SCALE_KEYS)} columns "
                       f"(missing: {', '.join(missing) or 'mean row'}); re-run its evaluate stage")
    return RunFAD(
        label=label,
        classes=tuple(r["class"] for r in rows[:-1]) + (AVERAGE,),
        fad=tuple(float(r["fad"]) for r in rows),
        low=tuple(_optional(r.get("ci_low", "")) for r in rows),
        high=tuple(_optional(r.get("ci_high", "")) for r in rows),
        clips=tuple(int(r.get("clips") or 0) for r in rows),
        scale={key: rows[0][key] for key in SCALE_KEYS},
        reference=rows[0].get("reference", ""),
    )


def run_labels(sources: list[Path], labels: list[str] | None) -> list[str]:
    """The given labels, else each run folder's name (its path where names repeat)."""
    if labels is not None:
        if len(labels) != len(sources) or len(set(labels)) != len(labels):
            raise RunError(f"--labels must give {len(sources)} different names, one per run; got {', '.join(labels)}")
        return labels
    names = [(s.parent.parent if s.is_file() and s.parent.name == "evaluate" else s).name or str(s) for s in sources]
    return [name if names.count(name) == 1 else str(source) for name, source in zip(names, sources)]


def require_comparable(runs: list[RunFAD]) -> None:
    """RunError listing every run's embedder, protocol and reference unless all share them and the classes."""
    scales = {tuple(r.scale[k] for k in SCALE_KEYS) for r in runs}
    classes = {r.classes for r in runs}
    if len(scales) == 1 and len(classes) == 1:
        return
    lines = "\n".join(
        f"  {r.label}: embedder {r.scale['embedder']}, protocol {r.scale['protocol']}, reference "
        f"{r.reference} (content id {r.scale['reference_id']}), classes {', '.join(r.classes[:-1])}" for r in runs
    )
    raise RunError(
        "these FADs are not comparable (different embedder, protocol, reference or classes); re-evaluate the runs "
        f"with one evaluate section (foley run --stages evaluate --set evaluate.…):\n{lines}"
    )


def _cell(run: RunFAD, i: int) -> str:
    if run.spread is not None:
        return f"{run.fad[i]:.2f} ± {run.spread[i]:.2f}"
    low, high = run.low[i], run.high[i]
    return f"{run.fad[i]:.2f}" if low is None or high is None else f"{run.fad[i]:.2f} [{low:.2f}, {high:.2f}]"


def _clip_range(run: RunFAD) -> str:
    low, high = min(run.clips[:-1]), max(run.clips[:-1])
    return str(low) if low == high else f"{low}-{high}"


def render_markdown(runs: list[RunFAD]) -> str:
    first = runs[0]
    lines = [
        "# FAD per class across runs (lower is better)",
        "",
        f"Embedder {first.scale['embedder']}, protocol {first.scale['protocol']}, reference {first.reference} "
        f"(content id {first.scale['reference_id']}). Generated clips per class: "
        + ", ".join(f"{r.label} {_clip_range(r)}" for r in runs)
        + ". [low, high]: bootstrap interval, where the run computed one."
        + "".join(f" {r.label}: mean ± sample standard deviation over {r.seeds} seeds." for r in runs if r.spread),
        "",
        "| class | " + " | ".join(r.label for r in runs) + " |",
        "|---|" + "---|" * len(runs),
    ]
    for i, name in enumerate(first.classes):
        cells = [_cell(r, i) for r in runs]
        label = f"**{name}**" if name == AVERAGE else f"{i} {name}"
        lines.append(f"| {label} | " + " | ".join(f"**{c}**" if name == AVERAGE else c for c in cells) + " |")
    return "\n".join(lines) + "\n"


def table_rows(runs: list[RunFAD]) -> tuple[tuple[str, ...], list[dict]]:
    fields = ["class"]
    for r in runs:
        fields += [r.label, f"{r.label} ci_low", f"{r.label} ci_high"] + ([f"{r.label} sd"] if r.spread else [])
    rows = []
    for i, name in enumerate(runs[0].classes):
        row = {"class": name}
        for r in runs:
            row.update({r.label: f"{r.fad[i]:.6f}", f"{r.label} ci_low": "" if r.low[i] is None else f"{r.low[i]:.6f}",
                        f"{r.label} ci_high": "" if r.high[i] is None else f"{r.high[i]:.6f}"})
            if r.spread:
                row[f"{r.label} sd"] = f"{r.spread[i]:.6f}"
        rows.append(row)
    return tuple(fields), rows


def plot_bars(runs: list[RunFAD], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = runs[0].classes
    x = np.arange(len(classes))
    width = 0.8 / len(runs)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(classes)), 4.0))
    for k, r in enumerate(runs):
        fad = np.array(r.fad)
        has_ci = all(v is not None for v in r.low + r.high)
        errors = np.array([fad - np.array(r.low, float), np.array(r.high, float) - fad]).clip(min=0) if has_ci else None
        if r.spread:
            errors = np.array(r.spread)
        ax.bar(x + (k - (len(runs) - 1) / 2) * width, fad, width, yerr=errors, capsize=2, label=r.label)
    ax.set_xticks(x, classes, rotation=30, ha="right")
    ax.set_ylabel("FAD (lower is better)")
    ax.set_title(f"FAD per class: {runs[0].scale['embedder']}, protocol {runs[0].scale['protocol']}")
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def _code_sources(sources: list[Path], labels: list[str]) -> tuple[list[Path], list[str]]:
    """The runs whose codes the codes table lists: each run, and each seed run of a group."""
    runs, names = [], []
    for source, label in zip(sources, labels):
        if is_group(source):
            record = read_group(source)
            runs += [source / name for name in record["runs"]]
            names += [f"{label} seed {seed}" for seed in record["seeds"]]
        else:
            runs.append(source)
            names.append(label)
    return runs, names


def compare_runs(sources: Sequence[str | Path], out_dir: str | Path, labels: Sequence[str] | None = None) -> list[Path]:
    """Write the table (markdown and CSV) and the bar chart for the runs (run folders or fad.csv files)
    into `out_dir`; returns the files written."""
    sources, out_dir = [Path(s) for s in sources], Path(out_dir)
    labels = list(labels) if labels is not None else None
    if len(sources) < 1:
        raise RunError("give at least one run folder")
    names = run_labels(sources, labels)
    runs = [read_run_fad(s, label) for s, label in zip(sources, names)]
    require_comparable(runs)
    fields, codes = codes_rows(*_code_sources(sources, names))
    paths = [out_dir / f"{STEM}.md", out_dir / f"{STEM}.csv", out_dir / f"{STEM}.png", out_dir / f"{CODES_STEM}.csv"]
    write_text_atomic(paths[0], render_markdown(runs) + "\n" + render_codes_markdown(codes))
    write_csv(paths[1], *table_rows(runs))
    plot_bars(runs, paths[2])
    write_csv(paths[3], fields, codes)
    return paths
