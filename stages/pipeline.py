"""The pipeline: every stage's declaration in the order they run, and a finished run's artifacts."""

from __future__ import annotations

from pathlib import Path

from foley.stages import (
    STAGE_NAMES,
    evaluate,
    extract_codes,
    prepare,
    sample,
    train_prior,
    train_vocoder,
    train_vqvae,
)
from foley.stages.manifest import read_manifest
from foley.stages.stage import Stage
from foley.util.errors import RunError

STAGES: tuple[Stage, ...] = tuple(m.STAGE for m in (prepare, train_vqvae, extract_codes, train_prior, train_vocoder,
                                                    sample, evaluate))
BY_NAME = {stage.name: stage for stage in STAGES}  # in the order of foley.stages.STAGE_NAMES (a test checks)


def artifact(run_dir: str | Path, stage: str, output: str | None = None, finished: bool = True) -> Path:
    """A declared output of a finished stage of the run in `run_dir` (the stage's folder when `output` is
    None); RunError when the stage or output is not declared, or (`finished`) when the stage has not
    finished there."""
    if stage not in BY_NAME:
        raise RunError(f"unknown stage {stage}; stages are {', '.join(STAGE_NAMES)}")
    if output is not None and output not in BY_NAME[stage].outputs:
        raise RunError(f"{stage} declares no output {output} (its outputs: {', '.join(BY_NAME[stage].outputs)})")
    folder = Path(run_dir) / stage
    manifest = read_manifest(folder)
    if finished and (manifest is None or manifest.get("status") != "complete"):
        raise RunError(f"'{run_dir}' has no finished {stage} stage; finish the run first (foley run --out {run_dir})")
    return folder if output is None else folder / output
