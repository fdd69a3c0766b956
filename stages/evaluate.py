"""evaluate: per-class FAD of the generated clips against the real reference clips.

Writes fad.csv (class, fad, n_generated, n_reference, embedder, plus a mean row),
fad_matrix.csv (generated class x reference class) and report.md.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from foley.config import Config
from foley.embedders import BuiltinEmbedder
from foley.errors import RunError
from foley.evaluation import ClassScores, class_stats, score_classes
from stages.context import StageContext, read_index, write_csv

NAME = "evaluate"
SECTIONS = ("evaluate",)
UPSTREAM = ("prepare", "sample")
FAD_FIELDS = ("class", "fad", "n_generated", "n_reference", "embedder")
log = logging.getLogger(__name__)


def run(config: Config, ctx: StageContext) -> dict:
    out = ctx.dir(NAME)
    names = config.data.eval_class_names
    reference = _reference_files(ctx, len(names))
    generated = [sorted((ctx.dir("sample") / "samples" / name).glob("*.wav")) for name in names]
    embedder = BuiltinEmbedder(config.mel, config.audio.sample_rate)
    args = (embedder, config.audio, config.evaluate.batch_size, ctx.device, ctx.progress)
    scores = score_classes(
        names,
        class_stats(generated, *args, label="generated"),
        class_stats(reference, *args, label="reference"),
        ([len(f) for f in generated], [len(f) for f in reference]),
    )
    _write_tables(out, scores, embedder.name)
    (out / "report.md").write_text(render_report(config, scores, embedder.description()))
    log.info("evaluate: mean FAD %.3f over %d classes (%s)", scores.mean, len(names), embedder.name)
    return {"mean_fad": scores.mean, "embedder": embedder.name, "fad": dict(zip(names, map(float, scores.fad)))}


def _reference_files(ctx: StageContext, classes: int) -> list[list[Path]]:
    files: list[list[Path]] = [[] for _ in range(classes)]
    for row in read_index(ctx):
        if row["split"] == "reference":
            files[int(row["class_id"])].append(Path(row["path"]))
    if any(len(f) < 2 for f in files):
        raise RunError(
            "evaluate needs at least 2 real reference clips per class: set data.reference to an "
            "evaluation-layout folder (dog_bark/, footstep/, ...) and run again"
        )
    return files


def _write_tables(out: Path, scores: ClassScores, embedder: str) -> None:
    rows = [
        {"class": name, "fad": f"{fad:.6f}", "n_generated": g, "n_reference": r, "embedder": embedder}
        for name, fad, g, r in zip(scores.class_names, scores.fad, scores.n_generated, scores.n_reference)
    ]
    rows.append({"class": "mean", "fad": f"{scores.mean:.6f}", "n_generated": sum(scores.n_generated),
                 "n_reference": sum(scores.n_reference), "embedder": embedder})
    write_csv(out / "fad.csv", FAD_FIELDS, rows)
    header = ("generated \\ reference",) + scores.class_names
    matrix_rows = [dict(zip(header, (name, *(f"{v:.6f}" for v in row)))) for name, row in zip(scores.class_names, scores.matrix)]
    write_csv(out / "fad_matrix.csv", header, matrix_rows)


def class_separation(scores: ClassScores) -> list[bool]:
    """Per generated class: is it closer to its own reference class than to every other one?"""
    return [bool(row[c] < np.delete(row, c).min()) for c, row in enumerate(scores.matrix)]


def render_report(config: Config, scores: ClassScores, embedder: str) -> str:
    separated = class_separation(scores)
    lines = [
        f"# foley run report: {config.name}",
        "",
        f"FAD per class: generated clips (`sample/samples/<class>/`) against real reference clips, "
        f"embedder {embedder}; {sum(scores.n_generated)} generated and {sum(scores.n_reference)} "
        "reference clips. Lower is better.",
        "",
        "| class | FAD | generated | reference | closest reference class is its own |",
        "|---|---|---|---|---|",
    ]
    for name, fad, g, r, ok in zip(scores.class_names, scores.fad, scores.n_generated, scores.n_reference, separated):
        lines.append(f"| {name} | {fad:.3f} | {g} | {r} | {'yes' if ok else 'no'} |")
    lines += [f"| **mean** | **{scores.mean:.3f}** | | | {sum(separated)} of {len(separated)} |", ""]
    lines += [
        "## Generated class (rows) x reference class (columns)",
        "",
        "| generated \\ reference | " + " | ".join(scores.class_names) + " |",
        "|---|" + "---|" * len(scores.class_names),
    ]
    for name, row in zip(scores.class_names, scores.matrix):
        cells = [f"**{v:.2f}**" if v == row.min() else f"{v:.2f}" for v in row]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
