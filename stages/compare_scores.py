"""The runs' scores as `foley compare` reads them: each run's fad.csv per embedder and metric (a group
of seed runs as the mean over its seeds ± their sample standard deviation), the labels, and the check
that the runs are on one scale."""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from foley.stages.artifacts import artifact
from foley.stages.seeds import is_group, read_group
from foley.util.errors import RunError

AVERAGE = "average"
SCALE_KEYS = ("embedder", "protocol", "reference_id")
METRIC_COLUMNS = {"fad": ("fad", "ci_low", "ci_high"), "kad": ("kad", "kad_ci_low", "kad_ci_high")}
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Series:
    """One run's scores under one embedder and one metric: per class, then the mean (last)."""

    label: str
    metric: str
    classes: tuple[str, ...]  # the run's classes, then AVERAGE
    value: tuple[float, ...]
    low: tuple[float | None, ...]
    high: tuple[float | None, ...]
    clips: tuple[int, ...]
    dim: int
    scale: dict[str, str]  # embedder, protocol, reference_id
    reference: str
    bandwidth_from: str  # KAD's bandwidth choice ("" for FAD)
    spread: tuple[float, ...] | None = None  # a group's sample standard deviation over its seeds
    seeds: int = 1

    @property
    def key(self) -> tuple[str, str]:
        return self.scale["embedder"], self.metric


@dataclass(frozen=True)
class RunScores:
    label: str
    source: Path
    series: dict[tuple[str, str], Series]  # (embedder, metric) -> its scores


def fad_csv_path(source: Path) -> Path:
    """A run folder's evaluate/fad.csv, or source itself when it is a CSV file."""
    path = source if source.is_file() else artifact(source, "evaluate", "fad.csv", finished=False)
    if not path.is_file():
        raise RunError(f"'{source}' has no FAD table (expected {path}); run `foley run --stages evaluate` there first")
    return path


def _optional(text: str | None) -> float | None:
    return float(text) if text else None


def _blocks(rows: list[dict], path: Path) -> list[list[dict]]:
    """The rows split into one block per embedder, each ending in its mean row."""
    blocks, current = [], []
    for row in rows:
        current.append(row)
        if row["class"] == "mean":
            blocks.append(current)
            current = []
    if current or not blocks:
        raise RunError(f"'{path}' is not a foley fad.csv: every embedder's rows must end in a mean row")
    return blocks


def _series(block: list[dict], label: str, metric: str) -> Series | None:
    value, low, high = METRIC_COLUMNS[metric]
    if not all(row.get(value) for row in block):
        return None
    return Series(
        label=label, metric=metric,
        classes=tuple(r["class"] for r in block[:-1]) + (AVERAGE,),
        value=tuple(float(r[value]) for r in block),
        low=tuple(_optional(r.get(low)) for r in block),
        high=tuple(_optional(r.get(high)) for r in block),
        clips=tuple(int(r.get("clips") or 0) for r in block),
        dim=int(block[0].get("dim") or 0),
        scale={key: block[0][key] for key in SCALE_KEYS},
        reference=block[0].get("reference", ""),
        bandwidth_from=block[0].get("kad_bandwidth_from", "") if metric == "kad" else "",
    )


def read_run_scores(source: Path, label: str) -> RunScores:
    """A run's fad.csv: its scores per embedder and metric; for a group of seed runs, their mean and spread."""
    return read_group_scores(source, label) if is_group(source) else read_one_run(source, label)


def read_group_scores(group: Path, label: str) -> RunScores:
    record = read_group(group)
    runs = [read_one_run(group / name, f"{label} seed {seed}") for seed, name in zip(record["seeds"], record["runs"])]
    keys = [key for key in runs[0].series if all(key in run.series for run in runs)]
    comparable_groups(runs)  # the seeds share one protocol, reference and classes
    series = {}
    for key in keys:
        values = np.array([run.series[key].value for run in runs])
        spread = values.std(axis=0, ddof=1) if len(runs) > 1 else np.zeros(values.shape[1])
        first = runs[0].series[key]
        none = (None,) * len(first.value)
        series[key] = replace(first, label=label, value=tuple(map(float, values.mean(axis=0))), low=none, high=none,
                              spread=tuple(map(float, spread)), seeds=len(runs))
    return RunScores(label, group, series)


def read_one_run(source: Path, label: str) -> RunScores:
    path = fad_csv_path(source)
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    missing = [key for key in (*SCALE_KEYS, "fad", "class") if rows and key not in rows[0]]
    if not rows or missing:
        raise RunError(f"'{path}' is not a foley fad.csv with {', '.join(SCALE_KEYS)} columns "
                       f"(missing: {', '.join(missing) or 'rows'}); re-run its evaluate stage")
    series = [_series(block, label, metric) for block in _blocks(rows, path) for metric in METRIC_COLUMNS]
    return RunScores(label, source, {s.key: s for s in series if s is not None})


def run_labels(sources: list[Path], labels: list[str] | None) -> list[str]:
    """The given labels, else each run folder's name (its path where names repeat)."""
    if labels is not None:
        if len(labels) != len(sources) or len(set(labels)) != len(labels):
            raise RunError(f"--labels must give {len(sources)} different names, one per run; got {', '.join(labels)}")
        return labels
    names = [(s.parent.parent if s.is_file() and s.parent.name == "evaluate" else s).name or str(s) for s in sources]
    return [name if names.count(name) == 1 else str(source) for name, source in zip(names, sources)]


def _describe(run: RunScores) -> str:
    first = next(iter(run.series.values()))
    return (f"  {run.label}: embedder(s) {', '.join(sorted({e for e, _ in run.series}))}, protocol "
            f"{first.scale['protocol']}, reference {first.reference} (content id {first.scale['reference_id']}), "
            f"classes {', '.join(first.classes[:-1])}")


def comparable_groups(runs: list[RunScores]) -> list[list[Series]]:
    """For each (embedder, metric) that every run scored, the runs' series; RunError listing every run's
    embedders, protocol and reference when there is none, or when one differs in protocol, reference or classes."""
    keys = [key for key in runs[0].series if all(key in run.series for run in runs)]
    groups = [[run.series[key] for run in runs] for key in keys]
    bad = [g for g in groups if len({(s.scale["protocol"], s.scale["reference_id"], s.classes) for s in g}) > 1]
    if not groups or bad:
        raise RunError(
            "these scores are not comparable (no common embedder, or a different protocol, reference or classes); "
            "re-evaluate the runs with one evaluate section (foley run --stages evaluate --set evaluate.…):\n"
            + "\n".join(_describe(run) for run in runs)
        )
    skipped = sorted({key for run in runs for key in run.series} - set(keys))
    if skipped:
        log.warning("compare: left out what not every run scored: %s", ", ".join(f"{e} {m}" for e, m in skipped))
    return groups


def seed_runs(sources: list[Path], labels: list[str]) -> tuple[list[Path], list[str]]:
    """Each run, and each seed run of a group in its place (the codes table and the page list runs)."""
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
