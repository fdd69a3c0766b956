"""Where a run's files lie: the outputs each stage declares (what other stages, the report pages, comparisons
and the API may read) and `artifact`, which finds one in a run folder.

It imports no stage, so the modules that read run folders and the stages that write them (evaluate writes
the report pages) import it alike; foley.stages.pipeline, which imports every stage, is for running them.
Each stage's declaration (its STAGE) takes its outputs from OUTPUTS.
"""

from __future__ import annotations

from pathlib import Path

from foley.stages import STAGE_NAMES
from foley.stages.manifest import read_manifest
from foley.util.errors import RunError

REFERENCE_CLIPS = "reference"  # prepare's reference clips for FAD, one folder per class
VQVAE_FILE, PRIOR_FILE = "vqvae.pt", "prior.pt"

OUTPUTS: dict[str, tuple[str, ...]] = {  # stage -> files or folders (in its folder) that others may read
    "prepare": ("mels.npy", "index.csv", "rejected.csv", "skipped.csv", REFERENCE_CLIPS),
    "train_vqvae": (VQVAE_FILE, "metrics.csv"),
    "extract_codes": ("codes.npy", "labels.npy", "splits.npy", "levels.csv"),
    "train_prior": (PRIOR_FILE, "metrics.csv"),
    "train_vocoder": (),  # g_<step> / do_<step> pairs and config.json when it trains (foley.vocoders.hifigan_files)
    "sample": ("samples", "codes.npy", "mels.npy"),
    "evaluate": ("fad.csv", "fad_matrix.csv", "floors.csv", "class_accuracy.csv", "class_confusion.csv", "report.md",
                 "embeddings"),
}


def artifact(run_dir: str | Path, stage: str, output: str | None = None, finished: bool = True) -> Path:
    """A declared output of a finished stage of the run in `run_dir` (the stage's folder when `output` is
    None); RunError when the stage or output is not declared, or (`finished`) when the stage has not
    finished there."""
    if stage not in OUTPUTS:
        raise RunError(f"unknown stage {stage}; stages are {', '.join(STAGE_NAMES)}")
    if output is not None and output not in OUTPUTS[stage]:
        raise RunError(f"{stage} declares no output {output} (its outputs: {', '.join(OUTPUTS[stage])})")
    folder = Path(run_dir) / stage
    manifest = read_manifest(folder)
    if finished and (manifest is None or manifest.get("status") != "complete"):
        raise RunError(f"'{run_dir}' has no finished {stage} stage; finish the run first (foley run --out {run_dir})")
    return folder if output is None else folder / output
