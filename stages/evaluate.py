"""evaluate: per-class FAD of the generated clips against the real reference clips.

Writes fad.csv (class, fad, n_generated, n_reference, embedder, protocol, plus a mean row),
fad_matrix.csv (generated class x reference class) and report.md. Embeddings and statistics are
cached in <run>/cache, keyed by clip content, embedder and protocol.
"""

from __future__ import annotations

import logging
from pathlib import Path

from foley.builtin_embedder import BuiltinEmbedder
from foley.config import Config
from foley.embedding import EmbedOptions
from foley.evaluation import ClassScores, score_classes
from foley.fad_protocols import class_files, enforce_inputs, get_protocol
from foley.reference_stats import clips_stats, load_reference, require_compatible
from stages.context import StageContext, write_csv
from stages.manifest import stage_details

NAME = "evaluate"
SECTIONS = ("evaluate",)
UPSTREAM = ("prepare", "sample")
FAD_FIELDS = ("class", "fad", "n_generated", "n_reference", "embedder", "protocol")
log = logging.getLogger(__name__)


def run(config: Config, ctx: StageContext) -> dict:
    out = ctx.dir(NAME)
    settings = config.evaluate
    names = config.data.eval_class_names
    embedder, protocol = BuiltinEmbedder(), get_protocol(settings.protocol)
    options = EmbedOptions(settings.batch_size, str(ctx.device), ctx.run_dir / "cache", ctx.progress)
    generated_files = class_files(ctx.dir("sample") / "samples", names)
    if protocol.official_checks:
        enforce_inputs(generated_files, settings.relax_checks)
    generated = {name: clips_stats(files, embedder, protocol, options) for name, files in generated_files.items()}
    source = Path(stage_details(ctx.run_dir, "prepare")["reference_dir"])
    reference = load_reference(source, names, embedder, protocol, settings.relax_checks, options)
    require_compatible(reference, protocol, embedder)
    scores = score_classes(names, generated, reference.stats)
    how = f"embedder {embedder.description()}, protocol {protocol.name}, reference {reference.source}"
    _write_tables(out, scores, embedder.name, protocol.name)
    (out / "report.md").write_text(render_report(config.name, scores, how))
    log.info("evaluate: mean FAD %.3f over %d classes (%s / %s)", scores.mean, len(names), embedder.name, protocol.name)
    return {
        "mean_fad": scores.mean,
        "fad": dict(zip(names, map(float, scores.fad))),
        "embedder": embedder.name,
        "protocol": protocol.name,
        "reference": reference.source,
        "classes_separated": sum(scores.separated()),
    }


def _write_tables(out: Path, scores: ClassScores, embedder: str, protocol: str) -> None:
    common = {"embedder": embedder, "protocol": protocol}
    rows = [
        {"class": name, "fad": f"{fad:.6f}", "n_generated": g, "n_reference": r, **common}
        for name, fad, g, r in zip(scores.class_names, scores.fad, scores.n_generated, scores.n_reference)
    ]
    rows.append({"class": "mean", "fad": f"{scores.mean:.6f}", "n_generated": sum(scores.n_generated),
                 "n_reference": sum(scores.n_reference), **common})
    write_csv(out / "fad.csv", FAD_FIELDS, rows)
    header = ("generated \\ reference",) + scores.class_names
    matrix = [dict(zip(header, (name, *(f"{v:.6f}" for v in row)))) for name, row in zip(scores.class_names, scores.matrix)]
    write_csv(out / "fad_matrix.csv", header, matrix)


def render_report(run_name: str, scores: ClassScores, how: str) -> str:
    separated = scores.separated()
    lines = [
        f"# foley run report: {run_name}",
        "",
        f"Per-class FAD of the generated clips (`sample/samples/<class>/`) against real reference clips; "
        f"{how}. Counts are embeddings (windows). Lower is better.",
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
