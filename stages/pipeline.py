"""The pipeline: every stage's declaration in the order they run (a run's files: foley.stages.artifacts)."""

from __future__ import annotations

from foley.stages import (
    evaluate,
    extract_codes,
    prepare,
    sample,
    train_prior,
    train_vocoder,
    train_vqvae,
)
from foley.stages.stage import Stage

STAGES: tuple[Stage, ...] = tuple(m.STAGE for m in (prepare, train_vqvae, extract_codes, train_prior, train_vocoder,
                                                    sample, evaluate))
BY_NAME = {stage.name: stage for stage in STAGES}  # in the order of foley.stages.STAGE_NAMES (a test checks)

