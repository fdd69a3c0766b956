"""`foley compare`: the per-class scores of several runs side by side, as the RVQ paper's Table 2, with
paired significance tests and the rank agreement between embedders and metrics.

One table per embedder and metric (FAD, KAD) that every run scored: rows are the classes and their
average, columns the runs; a cell is the score, with its bootstrap interval when the run computed one.
For each run after the first, "Δ" is its score minus the first run's with a 95 % paired bootstrap
interval, and "p" the two-sided p-value of no difference (foley.evaluate.paired): clip i of a class
in one run is paired with clip i in the other, both resampled together. The tests read the runs'
saved embeddings (evaluate/embeddings/<embedder>/, evaluate.save_embeddings); without them the
columns say n/a. With two or more such tables, Kendall's tau between the orderings of the runs by
their mean scores tells whether the embedders and metrics agree. Runs whose scores were made with a
different protocol or reference (content id), or over other classes, are refused. A group of seed runs
(`foley run --seeds`) is one column: the mean over its seeds ± their sample standard deviation (no
paired test: a group has no clip-by-clip pairs); the codes table and the page list its seed runs.
Writes fad_comparison.md, fad_comparison.csv and fad_comparison.png (grouped bars, Agg backend),
codes_comparison.csv: per run, its codes' bitrate, entropy, perplexity, unused codes,
reconstruction error and floors (foley.stages.compare_codes), also the markdown's last section, and
fad_comparison.html (the table with bars and the runs' clips side by side: foley.stages.report).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from foley.evaluate.embedding import safe_name
from foley.evaluate.fad import sample_size_warning
from foley.evaluate.paired import PairedTest, paired_test, rank_agreement, require_paired, saved_draws
from foley.evaluate.reference import reference_from_saved
from foley.evaluate.saved import is_saved_folder, load_embeddings
from foley.stages.artifacts import artifact
from foley.stages.compare_codes import CODES_STEM, codes_rows, render_codes_markdown
from foley.stages.compare_scores import (
    AVERAGE,
    RunScores,
    Series,
    comparable_groups,
    read_run_scores,
    run_labels,
    seed_runs,
)
from foley.stages.report import write_comparison_page
from foley.util.atomic import atomic_path, write_csv, write_text_atomic
from foley.util.errors import FoleyError, RunError

STEM = "fad_comparison"
TITLES = {"fad": "FAD", "kad": "KAD"}
RESAMPLES = 200
log = logging.getLogger(__name__)



# ---------------------------------------------------------------------------------------------
# Paired tests against the first run


@dataclass(frozen=True)
class Versus:
    """One run against the first run under one embedder and metric: the paired test, or why there is none."""

    label: str
    test: PairedTest | None
    note: str = ""


def embeddings_folder(run: RunScores, embedder: str) -> Path:
    """Where the run's evaluate stage saved the embeddings of `embedder` (beside a given fad.csv: ./embeddings/)."""
    base = run.source.parent / "embeddings" if run.source.is_file() else artifact(
        run.source, "evaluate", "embeddings", finished=False)
    return base / safe_name(embedder)


def _require_reproduced(test: PairedTest, series: Series, first: Series) -> None:
    """RunError unless the saved embeddings give the differences of the runs' fad.csv values (6 decimals)."""
    expected = np.array(series.value[:-1]) - np.array(first.value[:-1])
    found = np.array([d.difference for d in test.per_class])
    if not np.allclose(found, expected, rtol=1e-5, atol=1e-4):
        raise RunError(f"the saved embeddings of {series.label} and {first.label} ({series.scale['embedder']}) do not "
                       f"reproduce their fad.csv scores; re-run their evaluate stage (foley run --stages evaluate --force)")


def paired_against_first(group: list[Series], runs: list[RunScores], seed: int, resamples: int) -> list[Versus]:
    """Each run after the first against the first, clip by clip, from the saved embeddings (every run
    scored once on the shared draws)."""
    first = group[0]
    embedder, metric = first.key
    if any(s.spread is not None for s in group):
        return [Versus(s.label, None, "a group of seed runs has no clip-by-clip pairs") for s in group[1:]]
    folders = [embeddings_folder(run, embedder) for run in runs]
    if not all(is_saved_folder(folder) for folder in folders):
        return [Versus(s.label, None, "no saved embeddings (evaluate.save_embeddings)") for s in group[1:]]
    names = list(first.classes[:-1])
    saved = [load_embeddings(folder, names) for folder in folders]
    reference = reference_from_saved(folders[0], names).stats
    bandwidth = first.bandwidth_from or "reference"
    baseline = saved_draws(saved[0], metric, reference, bandwidth, seed, resamples)
    versus = []
    for series, other in zip(group[1:], saved[1:]):
        try:
            require_paired(other.clips(), saved[0].clips(), (series.label, first.label))
        except FoleyError as err:  # other numbers of clips per class: no pairs
            versus.append(Versus(series.label, None, str(err)))
            continue
        test = paired_test(saved_draws(other, metric, reference, bandwidth, seed, resamples), baseline)
        _require_reproduced(test, series, first)
        versus.append(Versus(series.label, test))
    return versus


# ---------------------------------------------------------------------------------------------
# Tables and chart


def _cell(series: Series, i: int) -> str:
    if series.spread is not None:
        return f"{series.value[i]:.2f} ± {series.spread[i]:.2f}"
    low, high = series.low[i], series.high[i]
    value = series.value[i]
    return f"{value:.2f}" if low is None or high is None else f"{value:.2f} [{low:.2f}, {high:.2f}]"


def _difference_cells(versus: Versus, i: int) -> list[str]:
    if versus.test is None:
        return ["n/a", "n/a"]
    d = versus.test.mean if i == len(versus.test.per_class) else versus.test.per_class[i]
    return [f"{d.difference:+.2f} [{d.low:+.2f}, {d.high:+.2f}]", f"{d.p_value:.3f}"]


def _clip_range(series: Series) -> str:
    low, high = min(series.clips[:-1]), max(series.clips[:-1])
    return str(low) if low == high else f"{low}-{high}"


def render_group(group: list[Series], versus: list[Versus]) -> list[str]:
    first = group[0]
    embedder, metric = first.key
    header = [first.label] + [part for v in versus for part in (v.label, f"Δ {v.label} − {first.label}", "p")]
    bandwidth = f", bandwidth from the {first.bandwidth_from} embeddings" if metric == "kad" else ""
    lines = [
        f"## {TITLES[metric]}, embedder {embedder}",
        "",
        f"Embedder {embedder}, protocol {first.scale['protocol']}, reference {first.reference} (content id "
        f"{first.scale['reference_id']})"
        f"{bandwidth}. Generated clips per class: " + ", ".join(f"{s.label} {_clip_range(s)}" for s in group) + "."
        + "".join(f" {s.label}: mean ± sample standard deviation over {s.seeds} seeds." for s in group if s.spread),
        "",
        "| class | " + " | ".join(header) + " |",
        "|---|" + "---|" * len(header),
    ]
    for i, name in enumerate(first.classes):
        cells = [_cell(first, i)] + [c for s, v in zip(group[1:], versus) for c in [_cell(s, i), *_difference_cells(v, i)]]
        label = f"**{name}**" if name == AVERAGE else f"{i} {name}"
        lines.append(f"| {label} | " + " | ".join(f"**{c}**" if name == AVERAGE else c for c in cells) + " |")
    notes = sorted({v.note for v in versus if v.note})
    if notes:
        lines += ["", "Paired tests not computed: " + "; ".join(notes) + "."]
    caution = sample_size_warning(min(first.clips[:-1]), first.dim) if metric == "fad" and first.dim else None
    return lines + (["", f"Caution: {caution}."] if caution else []) + [""]


def render_agreement(groups: list[list[Series]]) -> list[str]:
    scores = {f"{group[0].key[0]} {TITLES[group[0].metric]}": [s.value[-1] for s in group] for group in groups}
    lines = ["## Rank agreement between embedders and metrics", "",
             f"Kendall's tau-b between the orderings of the {len(groups[0])} runs by their mean scores (1: the same "
             "order, -1: reversed, empty: a score that does not tell the runs apart).", "",
             "| first | second | tau |", "|---|---|---|"]
    for agreement in rank_agreement(scores):
        tau = "" if np.isnan(agreement.tau) else f"{agreement.tau:.2f}"
        lines.append(f"| {agreement.first} | {agreement.second} | {tau} |")
    return lines + [""]


def render_markdown(groups: list[list[Series]], versus: list[list[Versus]]) -> str:
    lines = ["# Scores per class across runs (lower is better)", "",
             "[low, high]: the run's bootstrap interval, where it computed one. Δ: the run's score minus the first "
             "run's, with its 95 % paired bootstrap interval (the same clip draws for both runs); p: two-sided "
             "p-value of no difference (small: the difference is unlikely to be resampling noise).", ""]
    for group, against in zip(groups, versus):
        lines += render_group(group, against)
    if len(groups) > 1 and len(groups[0]) > 1:
        lines += render_agreement(groups)
    return "\n".join(lines)


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"


def table_rows(groups: list[list[Series]], versus: list[list[Versus]]) -> tuple[tuple[str, ...], list[dict]]:
    first = groups[0]
    fields = ["embedder", "metric", "class"]
    for s in first:
        fields += [s.label, f"{s.label} ci_low", f"{s.label} ci_high"] + [f"{s.label} sd"] * (s.spread is not None)
        if s is not first[0]:
            fields += [f"{s.label} diff", f"{s.label} diff_low", f"{s.label} diff_high", f"{s.label} p"]
    rows = []
    for group, against in zip(groups, versus):
        for i, name in enumerate(group[0].classes):
            row = {"embedder": group[0].key[0], "metric": group[0].metric, "class": name}
            for s in group:
                row.update({s.label: _number(s.value[i]), f"{s.label} ci_low": _number(s.low[i]),
                            f"{s.label} ci_high": _number(s.high[i])})
                if s.spread is not None:
                    row[f"{s.label} sd"] = _number(s.spread[i])
            for v in against:
                d = None if v.test is None else (v.test.mean if name == AVERAGE else v.test.per_class[i])
                row.update({f"{v.label} diff": _number(d and d.difference), f"{v.label} diff_low": _number(d and d.low),
                            f"{v.label} diff_high": _number(d and d.high), f"{v.label} p": _number(d and d.p_value)})
            rows.append(row)
    return tuple(fields), rows


def plot_bars(groups: list[list[Series]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = groups[0][0].classes
    x = np.arange(len(classes))
    fig, axes = plt.subplots(len(groups), 1, figsize=(max(6.0, 1.2 * len(classes)), 4.0 * len(groups)), squeeze=False)
    for ax, group in zip(axes[:, 0], groups):
        width = 0.8 / len(group)
        for k, s in enumerate(group):
            value = np.array(s.value)
            has_ci = all(v is not None for v in s.low + s.high)
            errors = np.array([value - np.array(s.low, float), np.array(s.high, float) - value]).clip(min=0) if has_ci else None
            if s.spread is not None:
                errors = np.array(s.spread)
            ax.bar(x + (k - (len(group) - 1) / 2) * width, value, width, yerr=errors, capsize=2, label=s.label)
        ax.set_xticks(x, classes, rotation=30, ha="right")
        ax.set_ylabel(f"{TITLES[group[0].metric]} (lower is better)")
        ax.set_title(f"{TITLES[group[0].metric]} per class: {group[0].key[0]}, protocol {group[0].scale['protocol']}")
        ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def compare_runs(sources: Sequence[str | Path], out_dir: str | Path, labels: Sequence[str] | None = None, seed: int = 0,
                 resamples: int = RESAMPLES) -> list[Path]:
    """Write the tables (markdown and CSV) and the bar chart for the runs (run folders or fad.csv files)
    into `out_dir`; returns the files written."""
    sources, out_dir = [Path(s) for s in sources], Path(out_dir)
    labels = list(labels) if labels is not None else None
    if len(sources) < 1:
        raise RunError("give at least one run folder")
    if resamples < 2:
        raise RunError(f"the paired tests need at least 2 resamples, got {resamples}")
    names = run_labels(sources, labels)
    runs = [read_run_scores(s, label) for s, label in zip(sources, names)]
    groups = comparable_groups(runs)
    versus = [paired_against_first(group, runs, seed, resamples) for group in groups]
    for group in groups:
        caution = sample_size_warning(min(group[0].clips[:-1]), group[0].dim) if group[0].metric == "fad" else None
        if caution:
            log.warning("compare: %s: %s", group[0].key[0], caution)
    run_sources, run_names = seed_runs(sources, names)
    fields, codes = codes_rows(run_sources, run_names)
    paths = [out_dir / f"{STEM}.md", out_dir / f"{STEM}.csv", out_dir / f"{STEM}.png", out_dir / f"{CODES_STEM}.csv"]
    write_text_atomic(paths[0], render_markdown(groups, versus) + "\n" + render_codes_markdown(codes))
    write_csv(paths[1], *table_rows(groups, versus))
    plot_bars(groups, paths[2])
    write_csv(paths[3], fields, codes)
    return paths + [write_comparison_page(run_sources, run_names, out_dir)]
