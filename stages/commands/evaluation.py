"""The evaluation commands of `foley`: fad and compare.

Arguments are checked before torch and the models are imported, so a bad flag fails at once.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from foley.config import load_config
from foley.registry import EMBEDDERS, PROTOCOLS
from foley.util.errors import DataError, RunError

log = logging.getLogger("foley")


def add_eval_commands(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    fad = commands.add_parser("fad", parents=[common], help="per-class FAD of a folder of clips against a reference")
    fad.add_argument("generated_dir", type=Path, help="folder of <class>/<audio files>")
    fad.add_argument("--reference", type=Path, required=True,
                     help="folder of <class>/<audio files>, statistics .npz, or folder of <class>/gt_embedding.pkl "
                          "(the official evaluator's data/eval)")
    fad.add_argument("--protocol", choices=PROTOCOLS.names(), required=True,
                     help="dcase2023 (the official evaluator) or standard (the embedder's rate and windows)")
    fad.add_argument("--embedder", choices=EMBEDDERS.names(), required=True,
                     help="builtin is weight-free (its numbers compare only with builtin numbers); others need weights")
    add_weights_arguments(fad)
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
    compare.add_argument("--out", type=Path, default=Path("outputs") / "comparison",
                         help="output folder (default outputs/comparison)")
    compare.add_argument("--labels", help="comma-separated column names, one per run (default: the run folders' names)")
    compare.set_defaults(handler=cmd_compare)


def add_weights_arguments(parser: argparse.ArgumentParser, note: str = "") -> None:
    """One option per registered embedder that takes weights (e.g. --vggish-weights PATH)."""
    for name in EMBEDDERS.names():
        weights = EMBEDDERS.entry(name).weights
        if weights is not None:
            parser.add_argument(weights.flag, type=Path, metavar="PATH", dest=_weights_dest(name),
                                help=f"{name}'s weights file {weights.file}{note}")


def weights_from(args: argparse.Namespace) -> dict[str, Path | None]:
    """The weights paths given on the command line, by embedder name."""
    return {name: getattr(args, _weights_dest(name), None) for name in EMBEDDERS.names()
            if EMBEDDERS.entry(name).weights is not None}


def _weights_dest(name: str) -> str:
    return "weights_" + name.replace("-", "_")


def cmd_fad(args: argparse.Namespace) -> int:
    if not args.generated_dir.is_dir():
        raise DataError(f"'{args.generated_dir}' is not a folder (expected {args.generated_dir}/<class>/<audio files>)")
    if not args.reference.exists():
        raise DataError(f"reference '{args.reference}' does not exist (give a folder of <class>/<audio files>, an .npz, "
                        "or a folder of <class>/gt_embedding.pkl)")
    weights = weights_from(args)
    entry = EMBEDDERS.entry(args.embedder)
    if entry.weights is not None:
        entry.weights.check(args.embedder, weights[args.embedder])
    if args.bootstrap == 1 or args.bootstrap < 0 or args.batch_size < 1:
        raise RunError("--bootstrap must be 0 (off) or at least 2, and --batch-size at least 1")
    names = tuple(n.strip() for n in args.classes.split(",")) if args.classes else load_config("base").data.eval_class_names
    from foley.evaluate.folders import score_folder

    result = score_folder(
        args.generated_dir, args.reference, embedder=args.embedder, protocol=args.protocol, weights=weights,
        classes=names, relax_checks=args.relax_checks, fad_inf=args.fad_inf, bootstrap=args.bootstrap,
        seed=args.seed, batch_size=args.batch_size, cache=args.cache, device=args.device or "auto",
        progress=not args.quiet,
    )
    print(result.table())
    if args.out:
        result.write_csv(args.out)
        log.info("wrote %s", args.out)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from foley.stages.compare import compare_runs

    labels = [label.strip() for label in args.labels.split(",")] if args.labels else None
    for path in compare_runs(args.runs, args.out, labels):
        log.info("wrote %s", path)
    return 0
