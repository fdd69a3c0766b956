"""evaluate: per-class FAD of the generated clips, and of the quality floors, against the reference.

The embedder, protocol and reference come from the config's evaluate section (reference null: the
clips prepare made of data.reference or the synthetic held-out set, prepare/reference/). Writes fad.csv (per class
and mean; CIs and FAD-inf when enabled), fad_matrix.csv (generated class x reference class),
floors.csv with floors/<vocoder|reconstruction>/<class>/NNNN.wav (real clips through the run's
vocoder, and through its autoencoder and vocoder; for an autoencoder trained with quantizer
dropout also reconstruction_k, decoding its first k levels), and report.md, which ends with the
codes' statistics per level that extract_codes recorded. Embeddings and statistics are cached in
<run>/cache (or the cache a group of seed runs shares), keyed by clip content, embedder and protocol.

Class accuracy (evaluate.classifier_epochs > 0): a log-mel CNN (foley.evaluate.classifier) trained
on prepare's real development clips (train and val splits) classifies the held-out real clips (the
ceiling), the floor clips and the generated clips: class_accuracy.csv, class_confusion.csv and a
report section. Its seed is fixed, not the run's, so one classifier judges every seed of a group;
it is cached in the cache's classifiers/, keyed by the content of its training clips.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import torch

from foley.config import Config
from foley.evaluate.classifier import (
    ClassAccuracy,
    ClassifierSettings,
    cached_classifier,
    class_accuracy,
    clip_mels,
    predict,
)
from foley.evaluate.code_tables import floor_fads_by_levels, levels_section
from foley.evaluate.embedders import build_embedder, check_weights
from foley.evaluate.embedding import EmbedOptions
from foley.evaluate.floors import FLOORS, floor_audio, level_floors
from foley.evaluate.folders import Scorer
from foley.evaluate.protocols import class_files, get_protocol
from foley.evaluate.scores import ExtraStatistics, SetScores
from foley.evaluate.tables import (
    ACCURACY_FIELDS,
    FAD_FIELDS,
    FLOOR_FIELDS,
    Provenance,
    accuracy_rows,
    confusion_rows,
    fad_rows,
    render_class_accuracy,
    render_report,
)
from foley.stages.context import StageContext, read_index
from foley.stages.manifest import update_fingerprint
from foley.stages.sample import load_decoder, write_clips
from foley.stages.stage import Stage
from foley.util.atomic import write_csv, write_text_atomic
from foley.util.errors import ConfigError, DataError

log = logging.getLogger(__name__)


def preflight(config: Config) -> None:
    """Fail before any stage runs when evaluation could not: weights or reference missing."""
    settings = config.evaluate
    check_weights(settings.embedder, settings.weights)
    if settings.reference is not None and not Path(settings.reference).exists():
        raise DataError(f"config key 'evaluate.reference': '{settings.reference}' does not exist (give an .npz, "
                        "a folder of <class>/gt_embedding.pkl, or a folder of <class>/<audio files>)")
    if settings.reference is None and config.data.root is not None and config.data.reference is None:
        raise ConfigError("evaluate has no reference: set data.reference (--reference) to real clips, "
                          "or evaluate.reference to statistics or clips")


def external_inputs(config: Config) -> str:
    """A fingerprint of the files evaluate reads from outside the run: the reference and the weights."""
    digest = hashlib.sha256()
    weights = config.evaluate.weights.get(config.evaluate.embedder)
    for path in (config.evaluate.reference, weights):
        digest.update(b"<none>" if path is None else str(path).encode())
        if path is not None:
            update_fingerprint(digest, Path(path))
    return digest.hexdigest()[:16]


def run(config: Config, ctx: StageContext) -> dict:
    out = ctx.out
    names = config.data.eval_class_names
    scorer = _scorer(config, ctx)
    generated = scorer.score(class_files(ctx.input("sample", "samples"), names))
    floors, floors_note = _floors(config, ctx, scorer)
    provenance = scorer.provenance
    _write_tables(out, generated, floors, provenance)
    accuracy, accuracy_note = _class_accuracy(config, ctx, tuple(floors))
    floor_means = {floor: result.scores.mean for floor, result in floors.items()}
    codes = ctx.details("extract_codes")
    codes_section = levels_section(codes, floor_fads_by_levels(floor_means, codes.get("levels", 0)))
    report = render_report(config.name, generated, provenance, floors, floors_note,
                           render_class_accuracy(accuracy, accuracy_note)) + "\n" + "\n".join(codes_section)
    write_text_atomic(out / "report.md", report)
    log.info("evaluate: mean FAD %.3f over %d classes (%s / %s)", generated.scores.mean, len(names),
             provenance.embedder, provenance.protocol)
    return {
        "class_accuracy": {name: result.mean for name, result in accuracy.items()},
        "mean_fad": generated.scores.mean,
        "fad": dict(zip(names, map(float, generated.scores.fad))),
        **provenance.columns(),
        "classes_separated": sum(generated.scores.separated()),
        "floors_mean_fad": floor_means,
    }


def _scorer(config: Config, ctx: StageContext) -> Scorer:
    settings = config.evaluate
    source = settings.reference
    if source is None and ctx.details("prepare").get("reference_dir") is not None:
        source = ctx.input("prepare", "reference")  # the clips prepare made of data.reference (or the synthetic set)
    if source is None:
        raise ConfigError("evaluate has no reference: set data.reference (--reference) or evaluate.reference")
    embedder = build_embedder(settings.embedder, settings.weights, ctx.device)
    options = EmbedOptions(settings.batch_size, str(ctx.device), ctx.cache, ctx.progress)
    extras = ExtraStatistics(settings.fad_inf, settings.bootstrap, seed=config.seed)
    return Scorer.open(source, config.data.eval_class_names, embedder, get_protocol(settings.protocol), options,
                       extras, settings.relax_checks)


def _floors(config: Config, ctx: StageContext, scorer: Scorer) -> tuple[dict[str, SetScores], str]:
    """Score the floors; also returns the report's sentence on how they were made (or why not)."""
    if not config.evaluate.floors:
        return {}, "Not computed (evaluate.floors is false)."
    names = config.data.eval_class_names
    chosen = _floor_rows(ctx, names, config.evaluate.floor_clips_per_class)
    if not all(chosen.values()):
        missing = ", ".join(name for name, rows in chosen.items() if not rows)
        return {}, f"Not computed: prepare holds no real reference clips of {missing} (set data.reference)."
    all_mels = np.load(ctx.input("prepare", "mels.npy"), mmap_mode="r")
    decoder = load_decoder(config, ctx.input, ctx.device)
    results = {}
    plan = {**{floor: None for floor in FLOORS}, **level_floors(decoder.autoencoder)}
    for floor, levels in plan.items():
        folder = ctx.out / "floors" / floor
        for name in names:  # one class at a time: memory stays at one class's clips
            mels = torch.from_numpy(np.ascontiguousarray(all_mels[chosen[name]]))
            audio = floor_audio("reconstruction" if levels else floor, mels, decoder.autoencoder, decoder.vocoder,
                                config.vocoder.batch_size, config.audio.clip_samples, ctx.device, levels)
            write_clips(folder / name, list(range(len(audio))), audio, config.audio.sample_rate)
        results[floor] = scorer.score(class_files(folder, names), cross_class=False, checked=False)
        log.info("evaluate: %s floor mean FAD %.3f", floor, results[floor].scores.mean)
    cap = config.evaluate.floor_clips_per_class
    note = (
        f"Real reference clips (prepare's log-mels of {f'at most {cap}' if cap else 'all'} clips "
        f"per class) carried through part of this run's generator, then scored exactly like the generated clips: "
        f"vocoder floor = real log-mel -> vocoder ({decoder.vocoder.name}); reconstruction floor = real log-mel "
        f"-> autoencoder (encode, quantise, decode) -> vocoder{_level_note(plan)}. The floors are made from the "
        f"reference clips "
        f"themselves, so they are optimistic bounds. Vocoder floor -> reconstruction floor is what the codes lose; "
        f"reconstruction floor -> generated is what the prior loses. Clips: `evaluate/floors/<floor>/<class>/`."
    )
    return results, note


def _class_accuracy(config: Config, ctx: StageContext, floors: tuple[str, ...]) -> tuple[dict[str, ClassAccuracy], str]:
    """Classify the held-out real, floor and generated clips and write class_accuracy.csv and
    class_confusion.csv (headers only when off); returns the results and the report's sentence on them."""
    epochs = config.evaluate.classifier_epochs
    results: dict[str, ClassAccuracy] = {}
    key, note = "", "Not computed (evaluate.classifier_epochs is 0)."
    if epochs:
        results, key, note = _classify(config, ctx, floors, epochs)
        log.info("evaluate: class accuracy %s", ", ".join(f"{k} {v.mean:.1%}" for k, v in results.items()))
    write_csv(ctx.out / "class_accuracy.csv", ACCURACY_FIELDS, accuracy_rows(results, key[:12]))
    write_csv(ctx.out / "class_confusion.csv", *confusion_rows(results, config.data.eval_class_names))
    return results, note


def _classify(config: Config, ctx: StageContext, floors: tuple[str, ...],
              epochs: int) -> tuple[dict[str, ClassAccuracy], str, str]:
    names = config.data.eval_class_names
    index = read_index(ctx)
    all_mels = np.load(ctx.input("prepare", "mels.npy"), mmap_mode="r")
    train = [r for r in index if r["split"] in ("train", "val")]
    model, key = cached_classifier(ctx.cache, np.ascontiguousarray(all_mels[[int(r["row"]) for r in train]]),
                                   np.array([int(r["class_id"]) for r in train]), len(names), ClassifierSettings(epochs=epochs))
    results = {}
    held_out = [r for r in index if r["split"] == "reference" and r["class_name"] in names]
    if held_out:
        mels = all_mels[[int(r["row"]) for r in held_out]]
        results["real"] = class_accuracy(np.array([int(r["class_id"]) for r in held_out]), predict(model, mels), names)
    folders = {floor: ctx.out / "floors" / floor for floor in floors}
    folders["generated"] = ctx.input("sample", "samples")
    for name, folder in folders.items():
        files = class_files(folder, names)
        paths = [path for class_name in names for path in files[class_name]]
        true = np.array([c for c, class_name in enumerate(names) for _ in files[class_name]])
        mels = clip_mels(paths, config.mel, config.audio.sample_rate, config.audio.clip_samples)
        results[name] = class_accuracy(true, predict(model, mels), names)
    note = (f"A log-mel CNN (foley.evaluate.classifier, {epochs} epochs, fixed seed; content id {key[:12]}) trained "
            f"on the {len(train)} real development clips prepare read classifies each set's clips (log-mels of the "
            "wav files); a cell is the share of a class's clips classified as that class (clips in brackets). "
            "Held-out real clips are the ceiling"
            + ("" if held_out else " (not computed: prepare holds no held-out real clips)") + ".")
    return results, key, note


def _level_note(plan: dict[str, int | None]) -> str:
    levels = [k for k in plan.values() if k]
    if not levels:
        return ""
    return (f"; the autoencoder was trained with quantizer dropout, so its reconstruction floor is also made "
            f"decoding only the first {', '.join(map(str, levels))} levels")


def _floor_rows(ctx: StageContext, names: tuple[str, ...], cap: int) -> dict[str, list[int]]:
    """prepare's mel rows of the reference split per class, in index order, at most cap each (0: all)."""
    chosen: dict[str, list[int]] = {name: [] for name in names}
    for row in read_index(ctx):
        if row["split"] == "reference" and row["class_name"] in chosen:
            if cap == 0 or len(chosen[row["class_name"]]) < cap:
                chosen[row["class_name"]].append(int(row["row"]))
    return chosen


def _write_tables(out: Path, generated: SetScores, floors: dict[str, SetScores], provenance: Provenance) -> None:
    write_csv(out / "fad.csv", FAD_FIELDS, fad_rows(generated, provenance))
    floor_rows = [{"floor": floor, **row} for floor, result in floors.items() for row in fad_rows(result, provenance)]
    write_csv(out / "floors.csv", FLOOR_FIELDS, floor_rows)
    scores = generated.scores
    header = ("generated \\ reference",) + scores.class_names
    matrix = [dict(zip(header, (name, *(f"{v:.6f}" for v in row)))) for name, row in zip(scores.class_names, scores.matrix)]
    write_csv(out / "fad_matrix.csv", header, matrix)


STAGE = Stage(
    name="evaluate",
    sections=("evaluate", "vocoder", "seed", "audio", "mel", "data.eval_class_names"),
    upstream=("prepare", "train_vqvae", "extract_codes", "train_vocoder", "sample"),
    outputs=("fad.csv", "fad_matrix.csv", "floors.csv", "class_accuracy.csv", "class_confusion.csv", "report.md"),
    run=run,
    preflight=preflight,
    external_inputs=external_inputs,
)
