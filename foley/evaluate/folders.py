"""Scoring folders of clips per class against a reference: one Scorer for the evaluate stage and
`foley fad` (and the Python API's `score_folder`).

A Scorer holds the embedder, the protocol, the reference statistics and how the numbers were
obtained (Provenance); each set of clips it scores is checked against the official evaluator's
input rules first where the protocol asks for them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from foley.config import load_config
from foley.evaluate.embedders import Weights, build_embedder, describe_embedder
from foley.evaluate.embedding import Embedder, EmbedOptions
from foley.evaluate.protocols import Protocol, class_files, enforce_inputs, get_protocol
from foley.evaluate.reference import ReferenceStats, load_reference, reference_digest, require_compatible
from foley.evaluate.scores import ExtraStatistics, SetScores, score_clips
from foley.evaluate.tables import FAD_FIELDS, Provenance, fad_rows, format_table
from foley.util.atomic import write_csv
from foley.util.device import resolve_device
from foley.util.errors import DataError


@dataclass(frozen=True)
class Scorer:
    embedder: Embedder
    protocol: Protocol
    reference: ReferenceStats
    provenance: Provenance
    options: EmbedOptions
    extras: ExtraStatistics
    relax_checks: bool

    @classmethod
    def open(cls, reference: str | Path, class_names: Sequence[str], embedder: Embedder, protocol: Protocol,
             options: EmbedOptions, extras: ExtraStatistics = ExtraStatistics(), relax_checks: bool = False) -> Scorer:
        """Load (or compute and cache) the reference's statistics for `embedder` under `protocol`."""
        names = tuple(class_names)
        stats = load_reference(reference, names, embedder, protocol, relax_checks, options)
        require_compatible(stats, protocol, embedder)
        provenance = Provenance(embedder.name, describe_embedder(embedder), protocol.name, stats.source,
                                reference_digest(reference, names))
        return cls(embedder, protocol, stats, provenance, options, extras, relax_checks)

    def score(self, files_by_class: Mapping[str, Sequence[Path]], cross_class: bool = True,
              checked: bool = True) -> SetScores:
        """Per-class scores of the files (the cross-class matrix too unless cross_class is False); the
        protocol's official input checks apply unless `checked` is False (clips foley made itself)."""
        if checked and self.protocol.official_checks:
            enforce_inputs(files_by_class, self.relax_checks)
        return score_clips(files_by_class, self.embedder, self.protocol, self.reference.stats, self.extras,
                           self.options, cross_class=cross_class)


@dataclass(frozen=True)
class FolderScores:
    """A folder's per-class scores with how they were obtained."""

    scores: SetScores
    provenance: Provenance

    def table(self) -> str:
        """The per-class table as plain text, headed by the embedder, protocol and reference."""
        return format_table(self.scores, self.provenance)

    def rows(self) -> list[dict]:
        """One row per class and a mean row, with the columns of a run's evaluate/fad.csv."""
        return fad_rows(self.scores, self.provenance)

    def write_csv(self, path: str | Path) -> None:
        write_csv(path, FAD_FIELDS, self.rows())


def score_folder(
    generated: str | Path,
    reference: str | Path,
    *,
    embedder: str = "builtin",
    protocol: str = "standard",
    weights: Weights | None = None,
    classes: Sequence[str] | None = None,
    relax_checks: bool = False,
    fad_inf: bool = False,
    bootstrap: int = 0,
    seed: int = 0,
    batch_size: int = 64,
    cache: str | Path | None = None,
    device: str = "auto",
    progress: bool = False,
) -> FolderScores:
    """Per-class FAD of `generated`/<class>/*.wav against `reference` (a folder of <class>/*.wav, an .npz
    of statistics, or the official evaluator's folder of <class>/gt_embedding.pkl).

    `weights` maps embedder names to their weights files (e.g. {"vggish": "vggish-10086976.pth"});
    `classes` defaults to the seven DCASE 2023 classes (base config's data.eval_class_names).
    """
    generated, reference = Path(generated), Path(reference)
    if not generated.is_dir():
        raise DataError(f"'{generated}' is not a folder (expected {generated}/<class>/*.wav)")
    names = tuple(classes) if classes else load_config("base").data.eval_class_names
    run_on = resolve_device(device)
    model = build_embedder(embedder, weights, run_on)
    options = EmbedOptions(batch_size, str(run_on), Path(cache) if cache else None, progress)
    extras = ExtraStatistics(fad_inf, bootstrap, seed=seed)
    scorer = Scorer.open(reference, names, model, get_protocol(protocol), options, extras, relax_checks)
    return FolderScores(scorer.score(class_files(generated, names), cross_class=False), scorer.provenance)
