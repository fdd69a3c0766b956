"""A run's listening report, evaluate/report.html, built from the files the run's stages wrote.

It reads only what is there: config.yaml, each stage's manifest.json, the trainers' metrics.csv,
extract_codes' codes, evaluate's CSVs and floors' clips, the generated clips and prepare's reference
clips. A section whose files are missing says so in one line; columns it does not know are shown
like the others. Pictures go to evaluate/report_files/ (rebuilt each time). The evaluate stage writes
the page as its last step and `foley report RUN_DIR` rebuilds it; neither re-runs anything.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np

from foley.evaluate.html import heading, link, note, page, paragraph, preformatted, section, table, td
from foley.stages import STAGE_NAMES
from foley.stages.artifacts import artifact
from foley.stages.manifest import REPORT_FILES, REPORT_PAGE, versions
from foley.stages.report.files import MEAN_ROWS, RunSettings, href, manifest, read_rows, run_file, run_settings
from foley.stages.report.listen import Clip, ClipSet, folder_set, render_sets
from foley.stages.report.scores import heatmap, matrices, number, score_table
from foley.stages.report.training import Pages, codebook_section, training_section
from foley.util.atomic import write_text_atomic

GENERATED_CLIPS = 10  # per class on the page (all of the demo's)
OTHER_CLIPS = 3  # per class and set: reference and each floor
SCORE_FILES = (("fad.csv", "Generated clips"), ("floors.csv", "Quality floors"), ("class_accuracy.csv", "Class accuracy"))
MATRIX_FILES = (("fad_matrix.csv", "Generated class x reference class (FAD)", True),
                ("class_confusion.csv", "True class x classified class (clips)", False))
PROVENANCE_KEYS = ("embedder", "protocol", "reference", "reference_id", "dim")
CLIP_KEYS = ("clips", "n_generated", "n_reference")
EVALUATE_FILES = ("report.md", "fad.csv", "fad_matrix.csv", "floors.csv", "class_accuracy.csv", "class_confusion.csv")


def write_run_report(run_dir: str | Path) -> Path:
    """Write (or rewrite) evaluate/report.html of the run in `run_dir`; returns its path."""
    run_dir = Path(run_dir)
    settings = run_settings(run_dir)
    out = artifact(run_dir, "evaluate", finished=False)
    pages = Pages(out, out / REPORT_FILES)
    shutil.rmtree(pages.image_dir, ignore_errors=True)
    sections = [
        ("scores", "Scores", _scores_section(run_dir)),
        ("matrices", "Class matrices", _matrices_section(run_dir)),
        ("listen", "Listen", _listen_section(run_dir, settings, pages)),
        ("training", "Training", training_section(run_dir, pages)),
        ("codebook", "Codebook", codebook_section(run_dir, pages)),
        ("provenance", "Provenance and versions", _provenance_section(run_dir)),
        ("config", "Config", preformatted(settings.text)),
    ]
    body = _files_line(run_dir, out) + "".join(section(anchor, title, html) for anchor, title, html in sections)
    subtitle = (f"{run_dir} · built {time.strftime('%Y-%m-%d %H:%M')} from the run's files by foley "
                f"{versions()['foley']} · FAD and KAD: lower is better")
    path = out / REPORT_PAGE
    write_text_atomic(path, page(f"foley run report: {settings.name}", subtitle, [s[:2] for s in sections], body))
    return path


def _files_line(run_dir: Path, out: Path) -> str:
    files = [run_dir / "config.yaml", run_dir / "log.txt"] + [run_file(run_dir, "evaluate", f) for f in EVALUATE_FILES]
    links = [link(href(f, out), f.relative_to(run_dir).as_posix()) for f in files if f.is_file()]
    return f"<p>Files: {' · '.join(links)}</p>\n" if links else ""


def _scores_section(run_dir: Path) -> str:
    parts = []
    for name, title in SCORE_FILES:
        rows = read_rows(run_file(run_dir, "evaluate", name))
        parts.append(heading(title))
        parts.append(score_table(rows) if rows else note(f"Not shown: evaluate/{name} is absent."))
    return "".join(parts)


def _matrices_section(run_dir: Path) -> str:
    parts = []
    for name, title, distances in MATRIX_FILES:
        rows = read_rows(run_file(run_dir, "evaluate", name))
        parts.append(heading(title))
        if rows is None:
            parts.append(note(f"Not shown: evaluate/{name} is absent."))
            continue
        parts.append(note("Darker: closer (log scale); outlined: each row's closest column, the diagonal when the "
                          "classes are apart." if distances else "Darker: a larger share of the row's clips; "
                          "outlined: each row's most frequent column."))
        parts += [heatmap(matrix, distances) for matrix in matrices(rows)]
    return "".join(parts)


def _listen_section(run_dir: Path, settings: RunSettings, pages: Pages) -> str:
    samples = artifact(run_dir, "sample", "samples", finished=False)
    floors_dir = run_file(run_dir, "evaluate", "floors")
    floors = _floor_names(run_dir, floors_dir)
    reference = _reference_sets(run_dir)
    fads = _class_fads(run_dir)
    parts = [note(f"Per class: up to {GENERATED_CLIPS} generated clips, {OTHER_CLIPS} reference clips and "
                  f"{OTHER_CLIPS} clips of each quality floor (the reference clips through the vocoder, and through "
                  "the autoencoder and vocoder). Spectrograms: the log-mel the model works on, low frequencies at the "
                  "bottom, one colour range for all.")]
    missing = {"No generated clips: sample/samples is absent.": not samples.is_dir(),
               "No reference clips: prepare/index.csv lists no clips of the reference split.": not reference,
               "No floors' clips: evaluate/floors is absent (evaluate.floors false, or evaluate not run).": not floors}
    parts += [note(text) for text, absent in missing.items() if absent]
    for name in settings.class_names:
        sets = [folder_set("generated", samples / name, GENERATED_CLIPS), reference.get(name)]
        sets += [folder_set(f"{floor} floor", floors_dir / floor / name, OTHER_CLIPS) for floor in floors]
        title = f"{name} · FAD {fads[name]}" if name in fads else name
        rows = render_sets([s for s in sets if s is not None], pages.page_dir, pages.image_dir / name, settings.mel)
        parts.append(f'<div class="class" id="class-{name}">{heading(title)}{rows}</div>\n')
    return "".join(parts)


def _class_fads(run_dir: Path) -> dict[str, str]:
    """Per class, the FAD of the first embedder of fad.csv that has one, with the embedder's name."""
    fads: dict[str, str] = {}
    for row in read_rows(run_file(run_dir, "evaluate", "fad.csv")) or []:
        if row.get("fad") and row["class"] not in fads:
            fads[row["class"]] = f"{number(float(row['fad']))} ({row.get('embedder', '')})"
    return fads


def _floor_names(run_dir: Path, floors_dir: Path) -> list[str]:
    """The floors in floors.csv's order, else the folders' names."""
    rows = read_rows(run_file(run_dir, "evaluate", "floors.csv")) or []
    listed = list(dict.fromkeys(r["floor"] for r in rows if "floor" in r))
    found = sorted(p.name for p in floors_dir.iterdir() if p.is_dir()) if floors_dir.is_dir() else []
    return [f for f in listed if f in found] + [f for f in found if f not in listed]


def _reference_sets(run_dir: Path) -> dict[str, ClipSet]:
    """Per class, the first reference clips: prepare's reference/<class>/ (the clips evaluate scores against);
    in run folders made before prepare wrote those, the reference rows of its index."""
    folder = artifact(run_dir, "prepare", "reference", finished=False)
    if not folder.is_dir():
        return _indexed_reference_sets(run_dir)
    sets = {path.name: folder_set("reference", path, OTHER_CLIPS) for path in sorted(folder.iterdir()) if path.is_dir()}
    return {name: clip_set for name, clip_set in sets.items() if clip_set is not None}


def _indexed_reference_sets(run_dir: Path) -> dict[str, ClipSet]:
    """Per class, the first reference rows of prepare's index: their source files, the log-mels prepare computed."""
    rows = read_rows(artifact(run_dir, "prepare", "index.csv", finished=False)) or []
    mels_path = artifact(run_dir, "prepare", "mels.npy", finished=False)
    mels = np.load(mels_path, mmap_mode="r") if mels_path.is_file() else None
    by_class: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        if row["split"] == "reference":
            by_class.setdefault(row["class_name"], []).append(row)
    return {name: ClipSet("reference", tuple(_reference_clip(r, mels) for r in members[:OTHER_CLIPS]), len(members))
            for name, members in by_class.items()}


def _reference_clip(row: dict[str, str], mels: np.ndarray | None) -> Clip:
    source = Path(row["path"])
    mel = np.asarray(mels[int(row["row"])]) if mels is not None else None
    if source.is_file():
        return Clip(source.stem, source, mel)
    return Clip(f"{source.name} (file not found)", None, mel)


def _provenance_section(run_dir: Path) -> str:
    found = {stage: m for stage in STAGE_NAMES if (m := manifest(run_dir, stage)) is not None}
    parts = [heading("How the scores were obtained"), _provenance_table(run_dir), heading("Stages")]
    rows = [(td(stage), td(m.get("status", "")), td(m.get("seconds", "")), td(m.get("finished", "")),
             td(_compact(m.get("details", {})))) for stage, m in found.items()]
    parts.append(table(("stage", "status", "seconds", "finished", "details (manifest.json)"), rows))
    if any(m.get("status") == "running" for m in found.values()):
        parts.append(note("running: the stage had not finished when this page was built (evaluate builds it as its "
                          "last step; `foley report` rebuilds it from the finished run)."))
    parts.append(heading("Versions"))
    parts.append(_versions_table(found))
    return "".join(parts)


def _provenance_table(run_dir: Path) -> str:
    """Each distinct embedder, protocol and reference of fad.csv, and how many clips were scored."""
    rows = read_rows(run_file(run_dir, "evaluate", "fad.csv"))
    if rows is None:
        return note("Not shown: evaluate/fad.csv is absent.")
    keys = [k for k in PROVENANCE_KEYS if k in rows[0]]
    distinct = list(dict.fromkeys(tuple(r[k] for k in keys) for r in rows))
    clips = [r for r in rows if r["class"] not in MEAN_ROWS]
    counts = ", ".join(f"{k} {_span([r[k] for r in clips])}" for k in CLIP_KEYS if k in rows[0])
    return table(keys, [[td(v) for v in values] for values in distinct]) + paragraph(
        f"Per class: {counts} (n_: embeddings, i.e. windows or clips, as the protocol frames them).")


def _span(values: list[str]) -> str:
    numbers = sorted({int(v) for v in values if v.isdigit()})
    return "" if not numbers else str(numbers[0]) if len(numbers) == 1 else f"{numbers[0]}-{numbers[-1]}"


def _versions_table(found: dict[str, dict]) -> str:
    sets: dict[str, list[str]] = {}
    for stage, m in found.items():
        sets.setdefault(json.dumps(m.get("versions", {}), sort_keys=True), []).append(stage)
    if not sets:
        return note("Not shown: no stage has a manifest.")
    keys = list(dict.fromkeys(k for text in sets for k in json.loads(text)))
    rows = [[td(k)] + [td(json.loads(text).get(k, "")) for text in sets] for k in keys]
    return table(("", *(", ".join(stages) for stages in sets.values())), rows)


def _compact(value: object) -> str:
    """A manifest value as short text: numbers to 4 significant digits, lists and mappings as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(_rounded(value), default=str, separators=(", ", ": ")).replace('"', "")


def _rounded(value: object) -> object:
    if isinstance(value, float):
        return float(number(value))
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value
