"""prepare: validate and convert the audio, compute every log-mel once.

Reads the development-layout folder (data.root, or the built-in synthetic set written into this
stage's folder) and the evaluation-layout reference folder. Writes mels.npy (accepted clips),
index.csv (row, path, class, split, conversions) and rejected.csv (path, class, split, reason).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from foley.audio.clips import RESAMPLE_METHOD
from foley.config import Config
from foley.data.layout import Entry, hold_out_validation, index_folder
from foley.data.mel_cache import build_mel_cache
from foley.data.synth import write_synthetic_set
from foley.stages.context import INDEX_FIELDS, StageContext
from foley.stages.manifest import update_fingerprint
from foley.stages.stage import Stage
from foley.util.atomic import write_csv
from foley.util.errors import DataError

REJECTED_FIELDS = ("path", "class_id", "split", "reason")
log = logging.getLogger(__name__)


def external_inputs(config: Config) -> str:
    """A fingerprint of the user's data folders (every file's path, size and mtime)."""
    digest = hashlib.sha256()
    for folder in (config.data.root, config.data.reference):
        if folder is None:
            digest.update(b"<synthetic>")
            continue
        update_fingerprint(digest, Path(folder))
    return digest.hexdigest()[:16]


def run(config: Config, ctx: StageContext) -> dict:
    out = ctx.out
    dev_dir, reference_dir = _data_folders(config, out, ctx.progress)
    data = config.data
    entries = hold_out_validation(index_folder(dev_dir, data.class_names, "train"), data.val_fraction, config.seed)
    if reference_dir is not None:
        entries += index_folder(reference_dir, data.eval_class_names, "reference")
    prepared, rejected = build_mel_cache(entries, config.audio, config.mel, out / "mels.npy", ctx.device, progress=ctx.progress)
    write_csv(out / "index.csv", INDEX_FIELDS, [_index_row(p.entry, p.row, p.conversions, data) for p in prepared])
    write_csv(out / "rejected.csv", REJECTED_FIELDS, [_rejected_row(r.entry, r.reason) for r in rejected])
    converted = sum(1 for p in prepared if p.conversions)
    log.info(
        "prepare: %d clips usable (%d converted), %d rejected (listed in %s)",
        len(prepared), converted, len(rejected), out / "rejected.csv",
    )
    _check_rejections(len(entries), rejected, data.max_rejected_fraction, out)
    splits = {s: sum(1 for p in prepared if p.entry.split == s) for s in ("train", "val", "reference")}
    return {
        "dev_dir": str(dev_dir),
        "reference_dir": str(reference_dir) if reference_dir else None,
        "clips": splits,
        "converted": converted,
        "rejected": len(rejected),
        "resample_method": RESAMPLE_METHOD,
    }


def _data_folders(config: Config, out: Path, progress: bool) -> tuple[Path, Path | None]:
    data = config.data
    if data.root is not None:
        return Path(data.root), Path(data.reference) if data.reference else None
    synthetic = write_synthetic_set(
        out / "synthetic",
        data.class_names,
        data.eval_class_names,
        data.synthetic.train_per_class,
        data.synthetic.reference_per_class,
        data.synthetic.seed,
        config.audio.sample_rate,
        config.audio.clip_samples,
        progress=progress,
    )
    return synthetic.dev_dir, Path(data.reference) if data.reference else synthetic.eval_dir


def _index_row(entry: Entry, row: int, conversions: tuple[str, ...], data) -> dict:
    names = data.eval_class_names if entry.split == "reference" else data.class_names
    return {
        "row": row,
        "path": str(entry.path),
        "class_id": entry.class_id,
        "class_name": names[entry.class_id],
        "split": entry.split,
        "conversions": "; ".join(conversions),
    }


def _rejected_row(entry: Entry, reason: str) -> dict:
    return {"path": str(entry.path), "class_id": entry.class_id, "split": entry.split, "reason": reason}


def _check_rejections(total: int, rejected: list, limit: float, out: Path) -> None:
    if total and len(rejected) / total > limit:
        raise DataError(
            f"prepare: {len(rejected)} of {total} files ({len(rejected) / total:.0%}) are unusable, above "
            f"data.max_rejected_fraction = {limit:g}; see {out / 'rejected.csv'} (raise the limit with "
            f"--set data.max_rejected_fraction=...)"
        )


STAGE = Stage(
    name="prepare",
    sections=("data", "audio", "mel", "seed"),
    upstream=(),
    outputs=("mels.npy", "index.csv", "rejected.csv"),
    run=run,
    external_inputs=external_inputs,
)
