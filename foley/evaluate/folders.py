"""Scoring folders of clips per class against a reference: one Scorer for the evaluate stage and
`foley fad` (and the Python API's `score_folder`).

A Scorer holds the embedder, the protocol, the reference (statistics, and embeddings where it has
them) and how the numbers were obtained (Provenance); each set of clips it scores is checked against
the official evaluator's input rules first where the protocol asks for them. It can also write the
embeddings it scored as a saved-embeddings folder (foley.evaluate.saved).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from foley.config import load_config
from foley.evaluate.embedders import Weights, build_embedder, describe_embedder
from foley.evaluate.embedding import Embedder, EmbedOptions
from foley.evaluate.protocols import Protocol, class_files, enforce_inputs, get_protocol
from foley.evaluate.reference import (
    ReferenceStats,
    holds_embeddings,
    load_reference,
    reference_digest,
    require_compatible,
    save_reference_stats,
)
from foley.evaluate.saved import EmbeddingSource, save_embeddings
from foley.evaluate.scores import ExtraStatistics, SetScores, embed_classes, score_set
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

    def embed(self, files_by_class: Mapping[str, Sequence[Path]], checked: bool = True) -> dict[str, list[np.ndarray]]:
        """Each class's clips embedded: class -> per clip (windows, D); the protocol's official input
        checks apply unless `checked` is False (clips foley made itself)."""
        if checked and self.protocol.official_checks:
            enforce_inputs(files_by_class, self.relax_checks)
        return embed_classes(files_by_class, self.embedder, self.protocol, self.options)

    def score_embeddings(self, embeddings: Mapping[str, Sequence[np.ndarray]], cross_class: bool = True) -> SetScores:
        return score_set(tuple(embeddings), embeddings, self.reference.stats, self.extras, cross_class,
                         self.reference.embeddings)

    def score(self, files_by_class: Mapping[str, Sequence[Path]], cross_class: bool = True,
              checked: bool = True) -> SetScores:
        """Per-class scores of the files (the cross-class matrix too unless cross_class is False)."""
        return self.score_embeddings(self.embed(files_by_class, checked), cross_class)

    def save(self, folder: str | Path, files_by_class: Mapping[str, Sequence[Path]],
             embeddings: Mapping[str, Sequence[np.ndarray]]) -> None:
        """Write the scored embeddings to folder, and the reference's embeddings, or its statistics where it
        holds no embeddings (the statistics of PANNs' 2048-d embeddings take 235 MB for 7 classes, and
        reference.npy gives them back exactly)."""
        source = EmbeddingSource(self.embedder.name, self.provenance.description, self.protocol.name,
                                 self.protocol.framing(self.embedder).key, self.embedder.dim, self.provenance.reference,
                                 self.provenance.reference_id)
        names = {name: [Path(f).name for f in files] for name, files in files_by_class.items()}
        reference = self.reference.embeddings
        save_embeddings(folder, source, embeddings, names, reference and {n: reference[n] for n in embeddings})
        if reference is None:
            save_reference_stats(folder, self.reference)


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
    metrics: Sequence[str] = ("fad",),
    kad_bandwidth: str = "reference",
    save_embeddings: str | Path | None = None,
) -> FolderScores:
    """Per-class FAD and/or KAD (`metrics`) of `generated`/<class>/*.wav against `reference` (a folder of
    <class>/*.wav, a folder of saved embeddings, an .npz of statistics, or the official evaluator's folder
    of <class>/gt_embedding.pkl; KAD needs one of the first two).

    `weights` maps embedder names to their weights files (e.g. {"vggish": "vggish-10086976.pth"});
    `classes` defaults to the seven DCASE 2023 classes (base config's data.eval_class_names);
    `save_embeddings` names a folder to write the embeddings scored (foley.evaluate.saved).
    """
    generated, reference = Path(generated), Path(reference)
    if not generated.is_dir():
        raise DataError(f"'{generated}' is not a folder (expected {generated}/<class>/*.wav)")
    names = tuple(classes) if classes else load_config("base").data.eval_class_names
    if "kad" in metrics and not holds_embeddings(reference):
        raise DataError(f"KAD needs the reference's embeddings, and '{reference}' holds statistics only: give a folder "
                        "of <class>/*.wav or of saved embeddings as the reference, or leave kad out")
    run_on = resolve_device(device)
    model = build_embedder(embedder, weights, run_on)
    options = EmbedOptions(batch_size, str(run_on), Path(cache) if cache else None, progress)
    extras = ExtraStatistics(fad_inf, bootstrap, seed=seed, metrics=tuple(metrics), kad_bandwidth=kad_bandwidth)
    scorer = Scorer.open(reference, names, model, get_protocol(protocol), options, extras, relax_checks)
    files = class_files(generated, names)
    embeddings = scorer.embed(files)
    scores = scorer.score_embeddings(embeddings, cross_class=False)
    if save_embeddings is not None:
        scorer.save(save_embeddings, files, embeddings)
    return FolderScores(scores, scorer.provenance)
