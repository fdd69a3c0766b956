"""evaluate: per-class FAD and/or KAD of the generated clips, and of the quality floors, against the reference.

The embedders (one, or several: evaluate.embedders), protocol, metrics and reference come from the
config's evaluate section (reference null: the clips prepare made of data.reference or the
synthetic held-out set, prepare/reference/). Writes, with a block of rows per embedder, fad.csv
(per class and mean; KAD, CIs and FAD-inf when enabled), fad_matrix.csv (generated class x reference
class, for each embedder with FAD), floors.csv with floors/<vocoder|reconstruction>/<class>/NNNN.wav
(real clips through the run's vocoder, and through its autoencoder and vocoder; for an autoencoder
trained with quantizer dropout also reconstruction_k, decoding its first k levels), report.md (a
section per embedder, then the codes' statistics per level that extract_codes recorded), and with
evaluate.save_embeddings embeddings/<embedder>/ (foley.evaluate.saved). Embeddings are cached in
<run>/cache (or the cache a group of seed runs shares), keyed by clip content, embedder and framing.

Class accuracy (evaluate.classifier_epochs > 0): a log-mel CNN (foley.evaluate.classifier) trained
on prepare's real development clips (train and val splits; classifier_epochs epochs, more on a small
set: at least classifier_min_steps steps) classifies the held-out real clips (the
ceiling), the floor clips and the generated clips: class_accuracy.csv, class_confusion.csv and a
report section. Its seed is fixed, not the run's, so one classifier judges every seed of a group;
it is cached in the cache's classifiers/, keyed by the content of its training clips.
"""

from __future__ import annotations

import dataclasses
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
    training_epochs,
)
from foley.evaluate.code_tables import floor_fads_by_levels, levels_section
from foley.evaluate.embedders import build_embedder, check_weights
from foley.evaluate.embedding import EmbedOptions, safe_name
from foley.evaluate.floors import FLOORS, floor_audio, level_floors
from foley.evaluate.folders import Scorer
from foley.evaluate.protocols import class_files, get_protocol
from foley.evaluate.reference import holds_embeddings
from foley.evaluate.scores import ExtraStatistics, SetScores
from foley.evaluate.tables import (
    ACCURACY_FIELDS,
    FAD_FIELDS,
    FLOOR_FIELDS,
    ReportSection,
    accuracy_rows,
    confusion_rows,
    fad_rows,
    render_class_accuracy,
    render_report,
)
from foley.stages.artifacts import OUTPUTS
from foley.stages.context import StageContext, read_index
from foley.stages.manifest import update_fingerprint
from foley.stages.report import write_run_report
from foley.stages.sample import load_decoder, write_clips
from foley.stages.stage import Stage
from foley.util.atomic import write_csv, write_text_atomic
from foley.util.errors import ConfigError, DataError

log = logging.getLogger(__name__)


def preflight(config: Config) -> None:
    """Fail before any stage runs when evaluation could not: weights or reference missing, or KAD asked of
    a reference that holds statistics only."""
    settings = config.evaluate
    for name in settings.embedder_names:
        check_weights(name, settings.weights)
    if settings.reference is not None and not Path(settings.reference).exists():
        raise DataError(f"config key 'evaluate.reference': '{settings.reference}' does not exist (give an .npz, "
                        "a folder of <class>/gt_embedding.pkl, of saved embeddings, or of <class>/<audio files>)")
    if settings.reference is not None and "kad" in settings.metrics and not holds_embeddings(settings.reference):
        raise ConfigError(f"evaluate.metrics has kad, which needs the reference's embeddings, but evaluate.reference "
                          f"'{settings.reference}' holds statistics only; give clips or saved embeddings, or drop kad")
    if settings.reference is None and config.data.root is not None and config.data.reference is None:
        raise ConfigError("evaluate has no reference: set data.reference (--reference) to real clips, "
                          "or evaluate.reference to statistics or clips")


def external_inputs(config: Config) -> str:
    """A fingerprint of the files evaluate reads from outside the run: the reference and the weights."""
    digest = hashlib.sha256()
    weights = [config.evaluate.weights.get(name) for name in config.evaluate.embedder_names]
    for path in (config.evaluate.reference, *weights):
        digest.update(b"<none>" if path is None else str(path).encode())
        if path is not None:
            update_fingerprint(digest, Path(path))
    return digest.hexdigest()[:16]


def run(config: Config, ctx: StageContext) -> dict:
    names = config.data.eval_class_names
    generated_files = class_files(ctx.input("sample", "samples"), names)
    floor_files, floors_note = _write_floors(config, ctx)
    (ctx.out / "embeddings").mkdir(parents=True, exist_ok=True)
    sections = []
    for embedder in config.evaluate.embedder_names:
        scorer = _scorer(config, ctx, embedder)
        embeddings = scorer.embed(generated_files)
        generated = scorer.score_embeddings(embeddings)
        if config.evaluate.save_embeddings:
            scorer.save(ctx.out / "embeddings" / safe_name(scorer.embedder.name), generated_files, embeddings)
        floors = {floor: scorer.score(files, cross_class=False, checked=False) for floor, files in floor_files.items()}
        sections.append(ReportSection(generated, scorer.provenance, floors, floors_note))
        log.info("evaluate: %s over %d classes (%s / %s)", _means(generated), len(names), scorer.provenance.embedder,
                 scorer.provenance.protocol)
    _write_tables(ctx.out, sections)
    accuracy, accuracy_note = _class_accuracy(config, ctx, tuple(floor_files))
    floor_means = {f: r.scores.mean for f, r in sections[0].floors.items() if r.scores is not None}
    codes = ctx.details("extract_codes")
    codes_section = levels_section(codes, floor_fads_by_levels(floor_means, codes.get("levels", 0)))
    report = render_report(config.name, sections, render_class_accuracy(accuracy, accuracy_note))
    write_text_atomic(ctx.out / "report.md", report + "\n" + "\n".join(codes_section))
    write_run_report(ctx.run_dir)
    return {"class_accuracy": {name: result.mean for name, result in accuracy.items()}, **_details(sections)}


def _means(result: SetScores) -> str:
    means = [f"mean FAD {result.scores.mean:.3f}"] if result.scores is not None else []
    return ", ".join(means + ([f"mean KAD {result.mean_kad.kad:.3f}"] if result.kad is not None else []))


def _details(sections: list[ReportSection]) -> dict:
    """The manifest's summary: the leading embedder's numbers, and every embedder's means."""
    lead = sections[0].generated
    fads = lead.scores
    return {
        "mean_fad": None if fads is None else fads.mean,
        "fad": None if fads is None else dict(zip(lead.class_names, map(float, fads.fad))),
        **sections[0].provenance.columns(),
        "classes_separated": None if fads is None else sum(fads.separated()),
        "floors_mean_fad": {f: r.scores.mean for f, r in sections[0].floors.items() if r.scores is not None},
        "embedders": {s.provenance.embedder: {"mean_fad": None if s.generated.scores is None else s.generated.scores.mean,
                                              "mean_kad": None if s.generated.kad is None else s.generated.mean_kad.kad}
                      for s in sections},
    }


def _scorer(config: Config, ctx: StageContext, embedder_name: str) -> Scorer:
    settings = config.evaluate
    source = settings.reference
    if source is None and ctx.details("prepare").get("reference_dir") is not None:
        source = ctx.input("prepare", "reference")  # the clips prepare made of data.reference (or the synthetic set)
    if source is None:
        raise ConfigError("evaluate has no reference: set data.reference (--reference) or evaluate.reference")
    embedder = build_embedder(embedder_name, settings.weights, ctx.device)
    options = EmbedOptions(settings.batch_size, str(ctx.device), ctx.cache, ctx.progress)
    extras = ExtraStatistics(settings.fad_inf, settings.bootstrap, seed=config.seed, metrics=settings.metrics,
                             kad_bandwidth=settings.kad_bandwidth)
    return Scorer.open(source, config.data.eval_class_names, embedder, get_protocol(settings.protocol), options,
                       extras, settings.relax_checks)


def _write_floors(config: Config, ctx: StageContext) -> tuple[dict[str, dict[str, list[Path]]], str]:
    """Write the floors' clips; returns their files per floor and class, and the report's sentence on how
    they were made (or why not)."""
    if not config.evaluate.floors:
        return {}, "Not computed (evaluate.floors is false)."
    names = config.data.eval_class_names
    chosen = _floor_rows(ctx, names, config.evaluate.floor_clips_per_class)
    if not all(chosen.values()):
        missing = ", ".join(name for name, rows in chosen.items() if not rows)
        return {}, f"Not computed: prepare holds no real reference clips of {missing} (set data.reference)."
    all_mels = np.load(ctx.input("prepare", "mels.npy"), mmap_mode="r")
    decoder = load_decoder(config, ctx.input, ctx.device)
    files = {}
    plan = {**{floor: None for floor in FLOORS}, **level_floors(decoder.autoencoder)}
    for floor, levels in plan.items():
        folder = ctx.out / "floors" / floor
        for name in names:  # one class at a time: memory stays at one class's clips
            mels = torch.from_numpy(np.ascontiguousarray(all_mels[chosen[name]]))
            audio = floor_audio("reconstruction" if levels else floor, mels, decoder.autoencoder, decoder.vocoder,
                                config.vocoder.batch_size, config.audio.clip_samples, ctx.device, levels)
            write_clips(folder / name, list(range(len(audio))), audio, config.audio.sample_rate)
        files[floor] = class_files(folder, names)
    cap = config.evaluate.floor_clips_per_class
    note = (
        f"Real reference clips (prepare's log-mels of {f'at most {cap}' if cap else 'all'} clips "
        f"per class) carried through part of this run's generator, then scored exactly like the generated clips: "
        f"vocoder floor = real log-mel -> vocoder ({decoder.vocoder.name}); reconstruction floor = real log-mel "
        f"-> autoencoder (encode, quantise, decode) -> vocoder{_level_note(plan)}. The floors are made from the "
        f"reference clips themselves, so they are optimistic bounds. Vocoder floor -> reconstruction floor is what "
        f"the codes lose; reconstruction floor -> generated is what the prior loses. Clips: "
        f"`evaluate/floors/<floor>/<class>/`."
    )
    return files, note


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
    settings = ClassifierSettings()
    epochs = training_epochs(len(train), settings.batch_size, epochs, config.evaluate.classifier_min_steps)
    model, key = cached_classifier(ctx.cache, np.ascontiguousarray(all_mels[[int(r["row"]) for r in train]]),
                                   np.array([int(r["class_id"]) for r in train]), len(names),
                                   dataclasses.replace(settings, epochs=epochs))
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


def _write_tables(out: Path, sections: list[ReportSection]) -> None:
    """fad.csv and floors.csv (a block of rows per embedder), fad_matrix.csv (per embedder with FAD)."""
    write_csv(out / "fad.csv", FAD_FIELDS, [row for s in sections for row in fad_rows(s.generated, s.provenance)])
    floor_rows = [{"floor": floor, **row} for s in sections for floor, result in s.floors.items()
                  for row in fad_rows(result, s.provenance)]
    write_csv(out / "floors.csv", FLOOR_FIELDS, floor_rows)
    names = sections[0].generated.class_names
    header = ("generated \\ reference", *names, "embedder")
    matrix = [dict(zip(header, (name, *(f"{v:.6f}" for v in row), s.provenance.embedder)))
              for s in sections if s.generated.scores is not None for name, row in zip(names, s.generated.scores.matrix)]
    write_csv(out / "fad_matrix.csv", header, matrix)


STAGE = Stage(
    name="evaluate",
    sections=("evaluate", "vocoder", "seed", "audio", "mel", "data.eval_class_names"),
    upstream=("prepare", "train_vqvae", "extract_codes", "train_vocoder", "sample"),
    outputs=OUTPUTS["evaluate"],
    run=run,
    preflight=preflight,
    external_inputs=external_inputs,
)
