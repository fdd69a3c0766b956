"""`foley compare`'s codes table: per run, what its codes spend and lose (foley.evaluate.code_tables).

Read from each run folder: extract_codes' manifest (bitrate, entropy, perplexity and unused codes
per level, reconstruction MSE) and evaluate/floors.csv (the reconstruction floors' mean FAD, with
the first k levels where the autoencoder was trained with quantizer dropout). A run given as a
bare fad.csv outside a run folder has empty cells.
"""

from __future__ import annotations

import csv
from pathlib import Path

from foley.evaluate.code_tables import CODE_COLUMNS, code_columns, floor_fads_by_levels
from foley.stages.artifacts import artifact
from foley.stages.manifest import stage_details

CODES_STEM = "codes_comparison"
TITLES = {
    "levels": "levels", "codebook_size": "codebook", "bitrate_bps": "bitrate (bit/s)",
    "entropy_bitrate_bps": "entropy bitrate (bit/s)", "entropy_bits_per_code": "entropy per level (bits/code)",
    "perplexity": "perplexity per level", "unused_codes": "unused codes per level", "recon_mse": "recon MSE",
    "recon_mse_split": "MSE split", "reconstruction_floor_fad": "reconstruction floor FAD",
    "reconstruction_floor_fad_by_levels": "floor FAD with 1..L levels",
}


def run_folder(source: Path) -> Path | None:
    """The run folder behind a compare argument: itself, or the run of an evaluate/fad.csv."""
    if source.is_dir():
        return source
    return source.parent.parent if source.parent.name == "evaluate" else None


def _floor_means(run: Path) -> dict[str, float]:
    path = artifact(run, "evaluate", "floors.csv", finished=False)
    if not path.is_file():
        return {}
    with open(path, newline="") as handle:
        means = [row for row in csv.DictReader(handle) if row.get("class") == "mean" and row.get("fad")]
    lead = means[0].get("embedder") if means else None  # several embedders: the first one's FADs
    return {row["floor"]: float(row["fad"]) for row in means if row.get("embedder") == lead}


def read_code_columns(source: Path) -> dict[str, str]:
    run = run_folder(source)
    details = stage_details(artifact(run, "extract_codes", finished=False)) if run is not None else {}
    return code_columns(details, floor_fads_by_levels(_floor_means(run) if run else {}, details.get("levels", 0)))


def codes_rows(sources: list[Path], labels: list[str]) -> tuple[tuple[str, ...], list[dict[str, str]]]:
    """The CSV's fields and one row per run."""
    return ("run", *CODE_COLUMNS), [{"run": label, **read_code_columns(s)} for s, label in zip(sources, labels)]


def render_codes_markdown(rows: list[dict[str, str]]) -> str:
    lines = [
        "## Codes per run",
        "",
        "From each run's extract_codes (bitrate of fixed-length codes; empirical entropy, perplexity and unused codes "
        "per level over the training clips; reconstruction MSE of the log-mel with all levels on the split named) and "
        "evaluate (mean reconstruction floor FAD, on the FAD table's scale). Empty: not recorded by that run.",
        "",
        "| run | " + " | ".join(TITLES[c] for c in CODE_COLUMNS) + " |",
        "|---|" + "---|" * len(CODE_COLUMNS),
    ]
    lines += ["| " + " | ".join([row["run"], *(row[c] for c in CODE_COLUMNS)]) + " |" for row in rows]
    return "\n".join(lines) + "\n"
