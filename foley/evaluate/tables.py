"""FAD tables as CSV rows, markdown and plain text, shared by the evaluate stage and `foley fad`.

Every row and every table names the embedder, the protocol and the reference (its description and
a content id), so that a number never travels without how it was obtained.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from foley.evaluate.classifier import ClassAccuracy
from foley.evaluate.fad import FADInterval
from foley.evaluate.scores import SetScores

FAD_FIELDS = (
    "class", "fad", "ci_low", "ci_high", "fad_inf", "clips", "n_generated", "n_reference",
    "embedder", "protocol", "reference", "reference_id",
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
    return "" if value is None else f"{value:.6f}"


def fad_rows(result: SetScores, provenance: Provenance) -> list[dict]:
    """One row per class and a `mean` row; ci_low/ci_high and fad_inf are empty when not computed."""
    s = result.scores
    intervals = result.intervals or (None,) * len(s.class_names)
    infs = [f.score for f in result.fad_inf] if result.fad_inf else [None] * len(s.class_names)
    rows = []
    for c, name in enumerate(s.class_names):
        rows.append({
            "class": name, "fad": _number(s.fad[c]), "ci_low": _number(intervals[c] and intervals[c].low),
            "ci_high": _number(intervals[c] and intervals[c].high), "fad_inf": _number(infs[c]),
            "clips": result.clips[c], "n_generated": s.n_generated[c], "n_reference": s.n_reference[c],
            **provenance.columns(),
        })
    mean = result.mean_interval
    rows.append({
        "class": "mean", "fad": _number(s.mean), "ci_low": _number(mean and mean.low),
        "ci_high": _number(mean and mean.high), "fad_inf": _number(result.mean_fad_inf),
        "clips": sum(result.clips), "n_generated": sum(s.n_generated), "n_reference": sum(s.n_reference),
        **provenance.columns(),
    })
    return rows


def _cell(fad: float, interval: FADInterval | None) -> str:
    return f"{fad:.3f}" if interval is None else f"{fad:.3f} [{interval.low:.3f}, {interval.high:.3f}]"


def _extras_note(result: SetScores) -> str:
    notes = []
    if result.intervals:
        first = result.intervals[0]
        notes.append(f"[low, high]: {first.confidence:.0%} percentile bootstrap interval over clips, "
                     f"{first.resamples} resamples, reference held fixed")
    if result.fad_inf:
        notes.append("FAD-inf: FAD extrapolated to infinitely many embeddings (fadtk's fit of FAD against 1/n)")
    return "; ".join(notes) + ("." if notes else "")


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


def render_report(run_name: str, generated: SetScores, provenance: Provenance,
                  floors: Mapping[str, SetScores], floors_note: str, accuracy: list[str] | None = None) -> str:
    s = generated.scores
    separated = s.separated()
    inf_header, inf_rule = (" FAD-inf |", "---|") if generated.fad_inf else ("", "")
    lines = [
        f"# foley run report: {run_name}",
        "",
        "Per-class FAD of the generated clips (`sample/samples/<class>/`) against the reference; "
        + " ".join(filter(None, [f"{provenance.sentence()}. Counts of generated and reference are embeddings "
                               "(windows). Lower is better.", _extras_note(generated)])),
        "",
        f"| class | FAD |{inf_header} clips | generated | reference | closest reference class is its own |",
        f"|---|---|{inf_rule}---|---|---|---|",
    ]
    for c, name in enumerate(s.class_names):
        interval = generated.intervals[c] if generated.intervals else None
        inf = f" {generated.fad_inf[c].score:.3f} |" if generated.fad_inf else ""
        lines.append(f"| {name} | {_cell(s.fad[c], interval)} |{inf} {generated.clips[c]} | {s.n_generated[c]} | "
                     f"{s.n_reference[c]} | {'yes' if separated[c] else 'no'} |")
    mean_inf = f" **{generated.mean_fad_inf:.3f}** |" if generated.fad_inf else ""
    lines += [f"| **mean** | **{_cell(s.mean, generated.mean_interval)}** |{mean_inf} {sum(generated.clips)} | | | "
              f"{sum(separated)} of {len(separated)} |", ""]
    lines += accuracy or []
    lines += render_floors(generated, floors, floors_note)
    lines += [
        "## Generated class (rows) x reference class (columns)",
        "",
        "| generated \\ reference | " + " | ".join(s.class_names) + " |",
        "|---|" + "---|" * len(s.class_names),
    ]
    for name, row in zip(s.class_names, s.matrix):
        cells = [f"**{v:.2f}**" if v == row.min() else f"{v:.2f}" for v in row]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def render_floors(generated: SetScores, floors: Mapping[str, SetScores], note: str) -> list[str]:
    lines = ["## Quality floors", "", note, ""]
    if not floors:
        return lines
    sets = {**{floor_title(k): v for k, v in floors.items()}, "generated": generated}
    lines += [
        "| class | " + " | ".join(f"{title} ({_clip_count(r)} clips)" for title, r in sets.items()) + " |",
        "|---|" + "---|" * len(sets),
    ]
    for c, name in enumerate(generated.scores.class_names):
        cells = [_cell(r.scores.fad[c], r.intervals[c] if r.intervals else None) for r in sets.values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    means = [_cell(r.scores.mean, r.mean_interval) for r in sets.values()]
    lines += ["| **mean** | " + " | ".join(f"**{m}**" for m in means) + " |", ""]
    return lines


def _clip_count(result: SetScores) -> str:
    low, high = min(result.clips), max(result.clips)
    return str(low) if low == high else f"{low}-{high}"


def format_table(result: SetScores, provenance: Provenance) -> str:
    """The per-class table as plain text for the terminal, headed by how it was obtained."""
    s = result.scores
    header = f"{'class':<22} {'FAD':>10}"
    header += f" {'95% CI':>21}" if result.intervals else ""
    header += f" {'FAD-inf':>10}" if result.fad_inf else ""
    header += f" {'clips':>6} {'embeddings':>10}"
    lines = [f"FAD per class: {provenance.sentence()}", header]
    names = list(s.class_names) + ["mean"]
    fads = list(s.fad) + [s.mean]
    intervals = list(result.intervals) + [result.mean_interval] if result.intervals else None
    infs = [f.score for f in result.fad_inf] + [result.mean_fad_inf] if result.fad_inf else None
    clips = list(result.clips) + [sum(result.clips)]
    counts = list(s.n_generated) + [sum(s.n_generated)]
    for i, name in enumerate(names):
        line = f"{name:<22} {fads[i]:>10.4f}"
        line += f" {f'[{intervals[i].low:.3f}, {intervals[i].high:.3f}]':>21}" if intervals else ""
        line += f" {infs[i]:>10.4f}" if infs else ""
        lines.append(line + f" {clips[i]:>6} {counts[i]:>10}")
    return "\n".join(lines)
