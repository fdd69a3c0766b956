"""Score tables as CSV rows, markdown and plain text, shared by the evaluate stage and `foley fad`.

Every row and every table names the embedder, the protocol and the reference (its description and
a content id), so that a number never travels without how it was obtained. A table holds the metrics
that were asked for (FAD with its FAD-inf and interval, KAD with its bandwidth and interval); the
others' cells are empty. Several embedders give several blocks of rows, each naming its embedder.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from foley.evaluate.classifier import ClassAccuracy
from foley.evaluate.fad import FADInterval, sample_size_warning
from foley.evaluate.kad import KADScore
from foley.evaluate.scores import SetScores

FAD_FIELDS = (
    "class", "fad", "ci_low", "ci_high", "fad_inf", "kad", "kad_ci_low", "kad_ci_high", "kad_bandwidth",
    "kad_bandwidth_from", "clips", "n_generated", "n_reference", "dim", "embedder", "protocol", "reference",
    "reference_id",
)
FLOOR_FIELDS = ("floor",) + FAD_FIELDS
FLOOR_TITLES = {"vocoder": "vocoder floor", "reconstruction": "reconstruction floor"}
ACCURACY_FIELDS = ("set", "class", "clips", "correct", "accuracy", "classifier")
ACCURACY_TITLES = {"real": "held-out real (ceiling)", "generated": "generated"}  # and the floors: floor_title


def floor_title(floor: str) -> str:
    """A floor's column title; reconstruction_k is the reconstruction floor with the first k levels."""
    if floor in FLOOR_TITLES:
        return FLOOR_TITLES[floor]
    return f"reconstruction floor, first {floor.rsplit('_', 1)[1]} levels"


@dataclass(frozen=True)
class Provenance:
    embedder: str
    description: str  # the embedder's own description (name, size, weights)
    protocol: str
    reference: str
    reference_id: str  # content hash of the reference's files (foley.evaluate.reference.reference_digest)

    def columns(self) -> dict[str, str]:
        return {"embedder": self.embedder, "protocol": self.protocol, "reference": self.reference,
                "reference_id": self.reference_id}

    def sentence(self) -> str:
        return (f"embedder {self.description}, protocol {self.protocol}, "
                f"reference {self.reference} (content id {self.reference_id})")


def _number(value: float | None) -> str:
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.6f}"


def _fad_columns(result: SetScores, c: int | None) -> dict[str, str]:
    """FAD cells of class c (None: the mean row)."""
    if result.scores is None:
        return dict.fromkeys(("fad", "ci_low", "ci_high", "fad_inf"), "")
    mean = c is None
    interval = result.mean_interval if mean else (result.intervals[c] if result.intervals else None)
    inf = result.mean_fad_inf if mean else (result.fad_inf[c].score if result.fad_inf else None)
    return {"fad": _number(result.scores.mean if mean else result.scores.fad[c]), "ci_low": _number(interval and interval.low),
            "ci_high": _number(interval and interval.high), "fad_inf": _number(inf)}


def _kad_columns(result: SetScores, c: int | None) -> dict[str, str]:
    if result.kad is None:
        return dict.fromkeys(("kad", "kad_ci_low", "kad_ci_high", "kad_bandwidth", "kad_bandwidth_from"), "")
    score = result.mean_kad if c is None else result.kad[c]
    return {"kad": _number(score.kad), "kad_ci_low": _number(score.low), "kad_ci_high": _number(score.high),
            "kad_bandwidth": _number(score.bandwidth), "kad_bandwidth_from": score.bandwidth_from}


def fad_rows(result: SetScores, provenance: Provenance) -> list[dict]:
    """One row per class and a `mean` row; cells of metrics and extras not computed are empty."""
    rows = [_row(result, c, name, provenance) for c, name in enumerate(result.class_names)]
    return rows + [_row(result, None, "mean", provenance)]


def _row(result: SetScores, c: int | None, name: str, provenance: Provenance) -> dict:
    """The CSV row of class c (None: the mean row, whose counts are totals)."""
    pick = (lambda values: sum(values)) if c is None else (lambda values: values[c])
    return {"class": name, **_fad_columns(result, c), **_kad_columns(result, c), "clips": pick(result.clips),
            "n_generated": pick(result.n_generated), "n_reference": pick(result.n_reference), "dim": result.dim,
            **provenance.columns()}


def _cell(value: float, interval: FADInterval | KADScore | None) -> str:
    if interval is None or interval.low is None:
        return f"{value:.3f}"
    return f"{value:.3f} [{interval.low:.3f}, {interval.high:.3f}]"


def _extras_note(result: SetScores) -> str:
    notes = []
    first = (result.intervals or result.kad or (None,))[0]
    if first is not None and first.resamples:
        notes.append(f"[low, high]: {first.confidence:.0%} percentile bootstrap interval over clips, "
                     f"{first.resamples} resamples, reference held fixed")
    if result.fad_inf:
        notes.append("FAD-inf: FAD extrapolated to infinitely many embeddings (fadtk's fit of FAD against 1/n)")
    if result.kad:
        notes.append(f"KAD: kernel audio distance (x100, Gaussian kernel, bandwidth = median pairwise distance of the "
                     f"{result.kad[0].bandwidth_from} embeddings of each class)")
    caution = sample_size_warning(min(result.clips), result.dim) if result.clips else None
    return "; ".join(notes) + ("." if notes else "") + (f" Caution: {caution}." if caution else "")


def _metric_cells(result: SetScores, c: int | None) -> list[str]:
    """The markdown cells of the metrics, for class c (None: the mean)."""
    cells = []
    if result.scores is not None:
        interval = result.mean_interval if c is None else (result.intervals[c] if result.intervals else None)
        cells.append(_cell(result.scores.mean if c is None else result.scores.fad[c], interval))
        if result.fad_inf:
            cells.append(f"{result.mean_fad_inf if c is None else result.fad_inf[c].score:.3f}")
    if result.kad is not None:
        score = result.mean_kad if c is None else result.kad[c]
        cells.append(_cell(score.kad, score))
    return cells


def _metric_headers(result: SetScores) -> list[str]:
    headers = ["FAD"] + ["FAD-inf"] * bool(result.fad_inf) if result.scores is not None else []
    return headers + ["KAD"] * (result.kad is not None)


@dataclass(frozen=True)
class ReportSection:
    """One embedder's part of a run report: the generated clips' scores, the floors, and how they were made."""

    generated: SetScores
    provenance: Provenance
    floors: Mapping[str, SetScores]
    floors_note: str


def accuracy_rows(results: Mapping[str, ClassAccuracy], classifier: str) -> list[dict]:
    """Per set (real, floors, generated): one row per class and a `mean` row (the mean of the classes)."""
    rows = []
    for name, result in results.items():
        correct = [int(v) for v in result.confusion.diagonal()]
        for c, class_name in enumerate(result.class_names):
            rows.append({"set": name, "class": class_name, "clips": int(result.clips[c]), "correct": correct[c],
                         "accuracy": _number(result.per_class[c]), "classifier": classifier})
        rows.append({"set": name, "class": "mean", "clips": int(result.clips.sum()), "correct": sum(correct),
                     "accuracy": _number(result.mean), "classifier": classifier})
    return rows


def confusion_rows(results: Mapping[str, ClassAccuracy], names: tuple[str, ...]) -> tuple[tuple[str, ...], list[dict]]:
    """Per set and true class, the clips predicted as each class."""
    fields = ("set", "true \\ predicted", *names)
    rows = [dict(zip(fields, (name, true, *map(int, counts))))
            for name, result in results.items() for true, counts in zip(result.class_names, result.confusion)]
    return fields, rows


def render_class_accuracy(results: Mapping[str, ClassAccuracy], note: str) -> list[str]:
    """The report's class-accuracy section: per class and set, then the generated clips' confusion matrix."""
    lines = ["## Class accuracy", "", note, ""]
    if not results:
        return lines
    names = next(iter(results.values())).class_names
    titles = [ACCURACY_TITLES.get(k) or floor_title(k) for k in results]
    lines += ["| class | " + " | ".join(titles) + " |", "|---|" + "---|" * len(results)]
    for c, name in enumerate(names):
        lines.append(f"| {name} | " + " | ".join(_percent(r.per_class[c], int(r.clips[c])) for r in results.values()) + " |")
    lines += ["| **mean** | " + " | ".join(f"**{r.mean:.1%}**" for r in results.values()) + " |", ""]
    if "generated" in results:
        lines += ["Generated clips: their class (rows) x the classifier's class (columns).", "",
                  "| generated \\ classified | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        for name, counts in zip(names, results["generated"].confusion):
            lines.append(f"| {name} | " + " | ".join(str(int(v)) for v in counts) + " |")
        lines.append("")
    return lines


def _percent(value: float, clips: int) -> str:
    return "no clips" if clips == 0 else f"{value:.1%} ({clips})"


def render_report(run_name: str, sections: Sequence[ReportSection], accuracy: list[str] | None = None) -> str:
    """The run's report: one section per embedder (headed by its name when there are several), then the
    class accuracy section when given (it does not depend on the embedder)."""
    lines = [f"# foley run report: {run_name}", ""]
    for section in sections:
        if len(sections) > 1:
            lines += [f"## Embedder {section.provenance.embedder}", ""]
        lines += render_section(section, "##" if len(sections) == 1 else "###")
    lines += accuracy or []
    return "\n".join(lines) + "\n"


def render_section(section: ReportSection, heading: str) -> list[str]:
    generated, provenance = section.generated, section.provenance
    separated = generated.scores.separated() if generated.scores is not None and generated.scores.cross_class else None
    headers = _metric_headers(generated) + ["clips", "generated", "reference"]
    headers += ["closest reference class is its own"] * (separated is not None)
    lines = [
        "Per-class scores of the generated clips (`sample/samples/<class>/`) against the reference; "
        + " ".join(filter(None, [f"{provenance.sentence()}. Counts of generated and reference are embeddings "
                                 "(windows). Lower is better.", _extras_note(generated)])),
        "",
        "| class | " + " | ".join(headers) + " |",
        "|---|" + "---|" * len(headers),
    ]
    for c, name in enumerate(generated.class_names):
        cells = _metric_cells(generated, c) + [str(generated.clips[c]), str(generated.n_generated[c]),
                                                str(generated.n_reference[c])]
        cells += ["yes" if separated[c] else "no"] * (separated is not None)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    mean = [f"**{cell}**" for cell in _metric_cells(generated, None)] + [str(sum(generated.clips)), "", ""]
    mean += [f"{sum(separated)} of {len(separated)}"] * (separated is not None)
    lines += ["| **mean** | " + " | ".join(mean) + " |", ""]
    lines += render_floors(generated, section.floors, section.floors_note, heading)
    if separated is not None:
        lines += render_matrix(generated, heading)
    return lines


def render_matrix(generated: SetScores, heading: str) -> list[str]:
    s = generated.scores
    lines = [
        f"{heading} Generated class (rows) x reference class (columns)",
        "",
        "| generated \\ reference | " + " | ".join(s.class_names) + " |",
        "|---|" + "---|" * len(s.class_names),
    ]
    for name, row in zip(s.class_names, s.matrix):
        cells = [f"**{v:.2f}**" if v == row.min() else f"{v:.2f}" for v in row]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines + [""]


def render_floors(generated: SetScores, floors: Mapping[str, SetScores], note: str, heading: str = "##") -> list[str]:
    lines = [f"{heading} Quality floors", "", note, ""]
    if not floors:
        return lines
    sets = {**{floor_title(k): v for k, v in floors.items()}, "generated": generated}
    metrics = [m for m in ("FAD", "KAD") if m in _metric_headers(generated)]
    columns = [f"{title} ({_clip_count(r)} clips)" + (f" {m}" if len(metrics) > 1 else "")
               for m in metrics for title, r in sets.items()]
    lines += ["| class | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for c, name in enumerate(generated.class_names):
        cells = [_floor_cell(r, m, c) for m in metrics for r in sets.values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    means = [_floor_cell(r, m, None) for m in metrics for r in sets.values()]
    lines += ["| **mean** | " + " | ".join(f"**{m}**" for m in means) + " |", ""]
    return lines


def _floor_cell(result: SetScores, metric: str, c: int | None) -> str:
    if metric == "KAD":
        score = result.mean_kad if c is None else result.kad[c]
        return _cell(score.kad, score)
    interval = result.mean_interval if c is None else (result.intervals[c] if result.intervals else None)
    return _cell(result.scores.mean if c is None else result.scores.fad[c], interval)


def _clip_count(result: SetScores) -> str:
    low, high = min(result.clips), max(result.clips)
    return str(low) if low == high else f"{low}-{high}"


def format_table(result: SetScores, provenance: Provenance) -> str:
    """The per-class table as plain text for the terminal, headed by how it was obtained."""
    columns: list[tuple[str, int]] = []
    if result.scores is not None:
        columns += [("FAD", 10)] + [("95% CI", 21)] * bool(result.intervals) + [("FAD-inf", 10)] * bool(result.fad_inf)
    if result.kad is not None:
        columns += [("KAD", 10)] + [("95% CI", 21)] * bool(result.kad[0].resamples)
    header = f"{'class':<22} " + " ".join(f"{title:>{width}}" for title, width in columns) + f" {'clips':>6} {'embeddings':>10}"
    title = " and ".join(m for m, on in (("FAD", result.scores is not None), ("KAD", result.kad is not None)) if on)
    lines = [f"{title} per class: {provenance.sentence()}", header]
    for index, name in [*enumerate(result.class_names), (None, "mean")]:
        values = _plain_values(result, index)
        clips = sum(result.clips) if index is None else result.clips[index]
        count = sum(result.n_generated) if index is None else result.n_generated[index]
        lines.append(f"{name:<22} " + " ".join(f"{v:>{w}}" for v, (_, w) in zip(values, columns)) + f" {clips:>6} {count:>10}")
    caution = sample_size_warning(min(result.clips), result.dim) if result.clips else None
    return "\n".join(lines + ([f"caution: {caution}"] if caution else []))


def _plain_values(result: SetScores, c: int | None) -> list[str]:
    values = []
    if result.scores is not None:
        interval = result.mean_interval if c is None else (result.intervals[c] if result.intervals else None)
        values.append(f"{result.scores.mean if c is None else result.scores.fad[c]:.4f}")
        values += [f"[{interval.low:.3f}, {interval.high:.3f}]"] if interval is not None else []
        values += [f"{result.mean_fad_inf if c is None else result.fad_inf[c].score:.4f}"] if result.fad_inf else []
    if result.kad is not None:
        score = result.mean_kad if c is None else result.kad[c]
        values.append(f"{score.kad:.4f}")
        values += [f"[{score.low:.3f}, {score.high:.3f}]"] if score.resamples else []
    return values
