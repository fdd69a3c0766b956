"""prepare: account for every file, convert the audio, compute every log-mel once.

Reads the development-layout folder (data.root, or the built-in synthetic set written into this
stage's folder) and the evaluation-layout reference folder. Every entry of a class folder ends in
exactly one of: index.csv (one row per clip: mel row, source path, offset, class, split,
conversions, notes such as clipping), rejected.csv (audio that cannot be used: unreadable,
truncated, empty, non-finite, silent; with the reason) or skipped.csv (hidden files, sub-folders,
files that are not audio, exact duplicates; with the reason). Writes mels.npy for the clips, and
reference/<class>/<row>.wav: the reference clips as evaluate scores against them.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import math
from collections import Counter
from pathlib import Path

from foley.audio.clips import ClipPolicy, fit_length, is_clip_file, read_recording, write_wav
from foley.audio.resampling import CLIP_RESAMPLER
from foley.config import Config
from foley.data.layout import Entry, Excluded, FolderScan, hold_out_validation, scan_folder
from foley.data.mel_cache import CacheResult, Prepared, build_mel_cache
from foley.data.synth import write_synthetic_set
from foley.stages.artifacts import OUTPUTS, REFERENCE_CLIPS
from foley.stages.context import INDEX_FIELDS, StageContext
from foley.stages.manifest import update_fingerprint
from foley.stages.stage import Stage
from foley.util.atomic import write_bytes_atomic, write_csv
from foley.util.errors import DataError

EXCLUDED_FIELDS = ("path", "class_id", "split", "reason")
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


def clip_policy(config: Config) -> ClipPolicy:
    data, audio = config.data, config.audio
    return ClipPolicy(audio.sample_rate, audio.clip_samples, data.long_files, data.split_hop, data.silence_db,
                      data.clipped_fraction)


def run(config: Config, ctx: StageContext) -> dict:
    out = ctx.out
    dev_dir, reference_dir = _data_folders(config, out, ctx.progress)
    data = config.data
    scans = [_scan(dev_dir, data.class_names, "train")]
    if reference_dir is not None:
        scans.append(_scan(reference_dir, data.eval_class_names, "reference"))
    dev = hold_out_validation(scans[0].entries, data.val_fraction, config.seed)
    entries = [e for scan in scans[1:] for e in scan.entries] + dev  # reference first: a recording in both stays there
    result = build_mel_cache(entries, clip_policy(config), config.mel, out / "mels.npy", ctx.device,
                             workers=data.num_workers, progress=ctx.progress)
    skipped = [s for scan in scans for s in scan.skipped] + result.duplicates
    _write_tables(out, result, skipped, data)
    _write_reference_clips(out, result.prepared, config)
    log.info(_summary(len(entries) + len(skipped) - len(result.duplicates), result, skipped, out))
    _check_rejections(result, data.max_rejected_fraction, out)
    _check_every_class_used(result, scans, out)
    return {
        "dev_dir": str(dev_dir),
        "reference_dir": str(reference_dir) if reference_dir else None,
        "files": {"used": result.files_used, "rejected": len(result.rejected), "skipped": len(skipped)},
        "clips": {s: sum(1 for p in result.prepared if p.entry.split == s) for s in ("train", "val", "reference")},
        "converted": sum(1 for p in result.prepared if p.conversions),
        "rejected": reason_counts(result.rejected),
        "skipped": reason_counts(skipped),
        "noted": reason_counts(_notes(result.prepared)),
        "unmatched": {str(scan.root): list(scan.unmatched) for scan in scans if scan.unmatched},
        "long_files": data.long_files,
        "resample_method": CLIP_RESAMPLER,
    }


def _scan(folder: Path, class_folders: tuple[str, ...], split: str) -> FolderScan:
    scan = scan_folder(folder, class_folders, split)
    warning = scan.unmatched_warning()
    if warning:
        log.warning("prepare: %s", warning)
    return scan


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


def _write_reference_clips(out: Path, prepared: list[Prepared], config: Config) -> None:
    """reference/<class>/<row>.wav: the reference clips as the FAD reference (empty folders without a
    reference). A file that already is a clip (16-bit mono WAV at the clip rate and length) is copied
    byte for byte; the others are written as 16-bit WAV from the clip prepare cut (each source decoded once)."""
    folder, audio = out / REFERENCE_CLIPS, config.audio
    for name in config.data.eval_class_names:
        (folder / name).mkdir(parents=True, exist_ok=True)
    clips = [p for p in prepared if p.entry.split == "reference"]
    for path, group in itertools.groupby(clips, key=lambda p: p.entry.path):
        group = list(group)
        if len(group) == 1 and group[0].offset == 0 and is_clip_file(path, audio.sample_rate, audio.clip_samples):
            write_bytes_atomic(_reference_path(folder, group[0], config), path.read_bytes())
            continue
        recording = read_recording(path, ClipPolicy(audio.sample_rate, audio.clip_samples, silence_db=-math.inf))
        for clip in group:
            samples, _ = fit_length(recording.audio[clip.offset : clip.offset + audio.clip_samples], audio.clip_samples)
            write_wav(_reference_path(folder, clip, config), samples, audio.sample_rate)


def _reference_path(folder: Path, clip: Prepared, config: Config) -> Path:
    return folder / config.data.eval_class_names[clip.entry.class_id] / f"{clip.row:05d}.wav"


def _class_names(entry: Entry, data) -> tuple[str, ...]:
    return data.eval_class_names if entry.split == "reference" else data.class_names


def _write_tables(out: Path, result: CacheResult, skipped: list[Excluded], data) -> None:
    write_csv(out / "index.csv", INDEX_FIELDS, [_index_row(p, data) for p in result.prepared])
    write_csv(out / "rejected.csv", EXCLUDED_FIELDS, [_excluded_row(r) for r in result.rejected])
    write_csv(out / "skipped.csv", EXCLUDED_FIELDS, [_excluded_row(s) for s in skipped])


def _index_row(clip: Prepared, data) -> dict:
    entry = clip.entry
    return {
        "row": clip.row,
        "path": str(entry.path),
        "offset": clip.offset,
        "class_id": entry.class_id,
        "class_name": _class_names(entry, data)[entry.class_id],
        "split": entry.split,
        "conversions": "; ".join(clip.conversions),
        "notes": "; ".join(clip.notes),
    }


def _excluded_row(excluded: Excluded) -> dict:
    entry = excluded.entry
    return {"path": str(entry.path), "class_id": entry.class_id, "split": entry.split, "reason": excluded.reason}


def _notes(prepared: list[Prepared]) -> list[Excluded]:
    """Each used file's notes once (its clips share them)."""
    first = {p.entry.path: p for p in reversed(prepared)}
    return [Excluded(p.entry, note) for p in first.values() for note in p.notes]


def reason_counts(excluded) -> dict[str, int]:
    """How many entries per kind of reason (the words before the first colon)."""
    return dict(Counter(e.reason.split(":")[0] for e in excluded).most_common())


def _summary(total: int, result: CacheResult, skipped: list[Excluded], out: Path) -> str:
    splits = Counter(p.entry.split for p in result.prepared)
    clips = ", ".join(f"{splits[s]} {s}" for s in ("train", "val", "reference") if splits[s])
    converted = sum(1 for p in result.prepared if p.conversions)
    return (f"prepare: {total} files: {result.files_used} used ({len(result.prepared)} clips: {clips}; {converted} converted), "
            f"{len(result.rejected)} rejected, {len(skipped)} skipped (reasons in {out}/rejected.csv and skipped.csv)")


def _check_rejections(result: CacheResult, limit: float, out: Path) -> None:
    audio = result.files_used + len(result.rejected) + len(result.duplicates)
    if audio and len(result.rejected) / audio > limit:
        raise DataError(
            f"prepare: {len(result.rejected)} of {audio} audio files ({len(result.rejected) / audio:.0%}) are unusable, "
            f"above data.max_rejected_fraction = {limit:g}; see {out / 'rejected.csv'} (raise the limit with "
            f"--set data.max_rejected_fraction=...)"
        )


def _check_every_class_used(result: CacheResult, scans: list[FolderScan], out: Path) -> None:
    used = {(p.entry.split == "reference", p.entry.class_id) for p in result.prepared}
    for scan in scans:
        empty = [name for i, name in enumerate(scan.class_folders) if (scan.split == "reference", i) not in used]
        if empty:
            raise DataError(
                f"prepare: class folder(s) {', '.join(empty)} of '{scan.root}' give no usable clip; see why in "
                f"{out / 'rejected.csv'} and {out / 'skipped.csv'}"
            )


STAGE = Stage(
    name="prepare",
    sections=("data", "audio", "mel", "seed"),
    upstream=(),
    outputs=OUTPUTS["prepare"],
    run=run,
    external_inputs=external_inputs,
)
