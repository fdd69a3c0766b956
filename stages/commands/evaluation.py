"""The evaluation commands of `foley`: fad and compare.

Arguments are checked before torch and the models are imported, so a bad flag fails at once.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from foley.config import EMBEDDERS, FAD_PROTOCOLS, load_config
from foley.models.vggish_weights import WEIGHTS_FILE, missing_weights_message
from foley.util.errors import CheckpointError, DataError, RunError

log = logging.getLogger("foley")


def add_eval_commands(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    fad = commands.add_parser("fad", parents=[common], help="per-class FAD of a folder of clips against a reference")
    fad.add_argument("generated_dir", type=Path, help="folder of <class>/<audio files>")
    fad.add_argument("--reference", type=Path, required=True,
                     help="folder of <class>/<audio files>, statistics .npz, "
                          "or folder of <class>/gt_embedding.pkl (the official evaluator's data/eval)")
    fad.add_argument("--protocol", choices=FAD_PROTOCOLS, required=True, help="dcase2023 (the official evaluator) or standard (16 kHz, 0.96 s)")
    fad.add_argument("--embedder", choices=EMBEDDERS, required=True, help="vggish (needs --vggish-weights) or builtin (weight-free; not comparable with VGGish numbers)")
    add_weights_argument(fad)
    fad.add_argument("--relax-checks", action="store_true", help="dcase2023: accept inputs the official evaluator would refuse")
    fad.add_argument("--out", type=Path, help="also write the table as CSV (the columns of a run's evaluate/fad.csv)")
    fad.add_argument("--classes", help="comma-separated class folders (default: the seven DCASE 2023 classes)")
    fad.add_argument("--fad-inf", action="store_true", help="also compute FAD-inf")
    fad.add_argument("--bootstrap", type=int, default=0, metavar="N", help="bootstrap interval from N resamples (default 0: off)")
    fad.add_argument("--seed", type=int, default=0, help="seed of FAD-inf and bootstrap resampling (default 0)")
    fad.add_argument("--batch-size", type=int, default=64, help="windows per embedder call (default 64)")
    fad.add_argument("--cache", type=Path, help="cache embeddings and statistics in this folder (default: no cache)")
    fad.add_argument("--device", help="auto, cpu, cuda or cuda:N (default auto)")
    fad.set_defaults(handler=cmd_fad)

    compare = commands.add_parser("compare", parents=[common], help="per-class FAD table and bar chart across runs")
    compare.add_argument("runs", type=Path, nargs="+", metavar="RUN_DIR", help="run folders (or fad.csv files)")
    compare.add_argument("--out", type=Path, default=Path("outputs") / "comparison", help="output folder (default outputs/comparison)")
    compare.add_argument("--labels", help="comma-separated column names, one per run (default: the run folders' names)")
    compare.set_defaults(handler=cmd_compare)


def add_weights_argument(parser: argparse.ArgumentParser, default: str = "") -> None:
    parser.add_argument("--vggish-weights", type=Path, metavar="PATH", help=f"torchvggish's {WEIGHTS_FILE}{default}")


def check_weights(path: Path | None, required: bool) -> None:
    if (path is None and required) or (path is not None and not path.is_file()):
        raise CheckpointError(missing_weights_message(path))


def cmd_fad(args: argparse.Namespace) -> int:
    if not args.generated_dir.is_dir():
        raise DataError(f"'{args.generated_dir}' is not a folder (expected {args.generated_dir}/<class>/<audio files>)")
    if not args.reference.exists():
        raise DataError(f"reference '{args.reference}' does not exist (give a folder of <class>/<audio files>, an .npz, "
                        "or a folder of <class>/gt_embedding.pkl)")
    check_weights(args.vggish_weights, required=args.embedder == "vggish")
    if args.bootstrap == 1 or args.bootstrap < 0 or args.batch_size < 1:
        raise RunError("--bootstrap must be 0 (off) or at least 2, and --batch-size at least 1")
    names = tuple(n.strip() for n in args.classes.split(",")) if args.classes else load_config("base").data.eval_class_names
    from foley.evaluate.embedders import build_embedder, describe_embedder
    from foley.evaluate.embedding import EmbedOptions
    from foley.evaluate.protocols import class_files, enforce_inputs, get_protocol
    from foley.evaluate.reference import load_reference, reference_digest, require_compatible
    from foley.evaluate.scores import ExtraStatistics, score_clips
    from foley.evaluate.tables import FAD_FIELDS, Provenance, fad_rows, format_table
    from foley.stages.context import write_csv
    from foley.util.device import resolve_device

    device = resolve_device(args.device or "auto")
    embedder = build_embedder(args.embedder, args.vggish_weights, device)
    protocol = get_protocol(args.protocol)
    options = EmbedOptions(args.batch_size, str(device), args.cache, progress=not args.quiet)
    files = class_files(args.generated_dir, names)
    if protocol.official_checks:
        enforce_inputs(files, args.relax_checks)
    reference = load_reference(args.reference, names, embedder, protocol, args.relax_checks, options)
    require_compatible(reference, protocol, embedder)
    provenance = Provenance(embedder.name, describe_embedder(embedder), protocol.name, reference.source,
                            reference_digest(args.reference, names))
    extras = ExtraStatistics(args.fad_inf, args.bootstrap, seed=args.seed)
    result = score_clips(files, embedder, protocol, reference.stats, extras, options, cross_class=False)
    print(format_table(result, provenance))
    if args.out:
        write_csv(args.out, FAD_FIELDS, fad_rows(result, provenance))
        log.info("wrote %s", args.out)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from foley.stages.commands.compare import compare_runs

    labels = [label.strip() for label in args.labels.split(",")] if args.labels else None
    for path in compare_runs(args.runs, args.out, labels):
        log.info("wrote %s", path)
    return 0
