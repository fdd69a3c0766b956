"""The `foley` command."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from foley.config import builtin_config_names, load_config, run_config
from foley.stages import STAGE_NAMES
from foley.stages.commands.bench import add_bench_commands
from foley.stages.commands.device_check import add_gpu_check
from foley.stages.commands.evaluation import add_eval_commands
from foley.stages.commands.launch import check_nproc, from_environment, relaunch, resume_command
from foley.stages.commands.report import add_report_command
from foley.stages.commands.vocode import add_vocode_command
from foley.util.errors import FoleyError, Interrupted, RunError

# Commands import torch and the models only once their arguments and config have been checked,
# so a bad key or path fails in a fraction of a second.
log = logging.getLogger("foley")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    _setup_logging(args.quiet)
    try:
        return args.handler(args) or 0
    except FoleyError as err:
        launch = from_environment()
        rank = f" (rank {launch.rank})" if launch is not None and launch.rank > 0 else ""
        print(f"foley{rank}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("foley: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="foley", description="Class-conditional Foley sound generation and FAD evaluation.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bars, warnings only")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", parents=[common],
                              help="run the pipeline (default: the quick CPU demo on the built-in synthetic set)")
    run.add_argument("--config", default=None, help=f"built-in config ({', '.join(sorted(builtin_config_names()))}) or YAML path")
    run.add_argument("--data", help="DCASE development-layout folder (sets data.root)")
    run.add_argument("--reference", help="evaluation-layout folder of real clips for FAD (sets data.reference)")
    run.add_argument("--out", help="run folder (default: outputs/<config name>)")
    run.add_argument("--stages", help=f"comma-separated subset of: {', '.join(STAGE_NAMES)}")
    run.add_argument("--force", action="store_true", help="re-run the selected stages even if up to date")
    run.add_argument("--device", help="auto, cpu, cuda or cuda:N (sets device)")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    run.add_argument("--seeds", metavar="S1,S2,...",
                     help="run the config once per seed, in OUT/seed<S> (OUT default: outputs/<config>-seeds), "
                          "sharing one cache, then write OUT/summary.md and summary.csv (mean and spread over the seeds)")
    run.add_argument("--nproc", type=int, metavar="N",
                     help="train on N processes on this machine (one per GPU; gloo on CPU): starts torchrun with this command")
    run.set_defaults(handler=cmd_run)

    gen = commands.add_parser("generate", parents=[common], help="write new clips of one class from a finished run")
    gen.add_argument("run_dir", type=Path)
    gen.add_argument("--class", dest="class_name", required=True, help="class name (either layout) or id")
    gen.add_argument("-n", type=int, default=10, help="number of clips (default 10)")
    gen.add_argument("--seed", type=int, help="seed (default: the run's; clip i then equals the run's sample i)")
    gen.add_argument("--out", type=Path, help="output folder (default: RUN_DIR/generated)")
    gen.add_argument("--guidance", type=float,
                     help="classifier-free guidance scale (default: the run's sample.guidance; 1 = none; "
                          "other values need a prior trained with prior.label_dropout > 0)")
    gen.add_argument("--best-of", type=int, metavar="K",
                     help="candidate maps per clip, one kept by --best-of-by (default: the run's sample.best_of; "
                          "1 = each clip its single draw)")
    gen.add_argument("--best-of-by", choices=("loudness", "prior"),
                     help="keep the candidate whose loudness fits the class's real clips, or the one the prior rates "
                          "best (needs prior.label_dropout > 0) (default: the run's sample.best_of_by)")
    gen.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    gen.add_argument("--force", action="store_true", help="overwrite existing clips")
    gen.set_defaults(handler=cmd_generate)

    synth = commands.add_parser("synth-data", parents=[common], help="write the built-in synthetic Foley set (DCASE layouts)")
    synth.add_argument("dir", type=Path)
    synth.add_argument("--per-class", default="100",
                       help="training clips per class (default 100), or 'dcase': the DCASE 2023 development set's 4,850")
    synth.add_argument("--reference-per-class", type=int, help="held-out clips per class (default: --per-class; 100 with dcase)")
    synth.add_argument("--seed", type=int, default=1234)
    synth.add_argument("--config", default="base", help="config giving class names and audio format")
    synth.set_defaults(handler=cmd_synth_data)
    add_eval_commands(commands, common)
    add_vocode_command(commands, common)
    add_report_command(commands, common)
    add_bench_commands(commands, common)
    add_gpu_check(commands, common)
    return parser


def cmd_run(args: argparse.Namespace) -> int:
    """Run the pipeline; under torchrun every process runs this (see foley.stages.commands.launch)."""
    config = run_config(args.config, data=args.data, reference=args.reference, device=args.device,
                        overrides=args.overrides)
    seeds = _seeds(args.seeds, args.overrides)
    stages = tuple(s.strip() for s in args.stages.split(",")) if args.stages else STAGE_NAMES
    import torch

    from foley.util import distributed
    from foley.util.device import resolve_device

    launch = from_environment()
    device = resolve_device(config.device)
    check_nproc(args.nproc, launch, device.type == "cuda", torch.cuda.device_count())
    if launch is None and (args.nproc or 1) > 1:
        return relaunch(args.nproc, args.argv)
    if launch is not None and launch.world_size > 1:
        device = distributed.start(launch.rank, launch.world_size, launch.local_rank, device)
    resume = resume_command(args.argv, launch)
    try:
        if seeds is None:
            return _run_here(args, config, stages, device, resume, Path(args.out or Path("outputs") / config.name))
        return _run_seeds(args, config.name, seeds, stages, device, resume)
    finally:
        distributed.stop()


def _seeds(text: str | None, overrides: list[str]) -> list[int] | None:
    if text is None:
        return None
    from foley.stages.seeds import parse_seeds

    if any(o.split("=", 1)[0].strip() == "seed" for o in overrides):
        raise RunError("give the seeds with --seeds alone, not also with --set seed=...")
    return parse_seeds(text)


def _run_seeds(args: argparse.Namespace, name: str, seeds: list[int], stages: tuple[str, ...], device,
               resume: str) -> int:
    """One run per seed in GROUP/seed<N>, sharing GROUP/cache; then the group's summary (rank 0 writes)."""
    from foley.stages.seeds import group_finished, seed_run_dir, write_group_file, write_summary
    from foley.util import distributed

    group = Path(args.out or Path("outputs") / f"{name}-seeds")
    distributed.on_main(lambda: (group.mkdir(parents=True, exist_ok=True),
                                 write_group_file(group, name, seeds, resume)))
    for seed in seeds:
        config = run_config(args.config, data=args.data, reference=args.reference, device=args.device,
                            overrides=[*args.overrides, f"seed={seed}"])
        code = _run_here(args, config, stages, device, resume, seed_run_dir(group, seed), group / "cache")
        if code:
            return code
    if group_finished(group):
        for path in distributed.on_main(lambda: write_summary(group)) or []:
            log.info("summary of %d seeds: %s", len(seeds), path)
    return 0


def _run_here(args: argparse.Namespace, config, stages: tuple[str, ...], device, resume: str, run_dir: Path,
              cache_dir: Path | None = None) -> int:
    """This process's part of the run: all of it alone, or its rank's part (rank 0 logs and writes)."""
    from foley.stages.context import StageContext
    from foley.stages.runner import run_pipeline
    from foley.util import distributed

    main_rank = distributed.is_main()
    ctx = StageContext(run_dir=run_dir, device=device, progress=not args.quiet and main_rank, cache_dir=cache_dir)
    if main_rank:
        _log_to_file(run_dir)
    else:
        _setup_logging(quiet=True, level=logging.ERROR)
    log.info("run %s: config %s, device %s%s", run_dir, config.name, ctx.device,
             f", {distributed.world_size()} processes" if distributed.active() else "")
    try:
        outcomes = run_pipeline(config, ctx, stages, force=args.force)
    except Interrupted as err:
        message = f"foley: {err}. Resume with: {resume}"
        distributed.on_main(lambda: print(message, file=sys.stderr))
        return err.exit_code
    except KeyboardInterrupt:
        if main_rank:
            print(f"foley: interrupted. Resume with: {resume}", file=sys.stderr)
        return 130
    for outcome in outcomes:
        log.info("  %-14s %-8s %7.1f s", outcome.name, outcome.status, outcome.seconds)
    report = run_dir / "evaluate" / "report.html"
    if report.exists() and "evaluate" in stages:
        log.info("report: %s", report)
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from foley.stages.api import load_run, refuse_existing
    from foley.stages.report import write_clips_page

    run = load_run(args.run_dir)
    if args.n < 1:
        raise RunError("-n must be at least 1")
    name = run.config.data.eval_class_names[run.class_id(args.class_name)]
    folder = (args.out or args.run_dir / "generated") / name
    refuse_existing(folder, args.n, args.force)  # before the minutes of sampling
    clips = run.generate(name, args.n, seed=args.seed, device=args.device, progress=not args.quiet,
                         guidance=args.guidance, best_of=args.best_of, best_of_by=args.best_of_by)
    paths = clips.write(folder, force=True)
    by = f" by {clips.best_of_by}" if clips.best_of > 1 else ""
    settings = f"seed {clips.seed}, guidance {clips.guidance:g}, best of {clips.best_of}{by}"
    page = write_clips_page(folder.parent / f"{name}.html", paths, f"foley generate: {len(paths)} clips of {name}",
                            f"run {args.run_dir}, {settings}", run.config.mel)
    log.info("wrote %d clips of %s to %s (%s); to listen: %s", len(paths), name, folder, settings, page)
    return 0


def cmd_synth_data(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    from foley.data.synth import DCASE_DEV_COUNTS, write_synthetic_set

    if args.per_class != "dcase" and not args.per_class.isdigit():
        raise RunError(f"--per-class takes a number of clips or 'dcase', got {args.per_class!r}")
    per_class = DCASE_DEV_COUNTS if args.per_class == "dcase" else int(args.per_class)
    reference = args.reference_per_class or (100 if args.per_class == "dcase" else per_class)
    if per_class == 0 or reference < 1:
        raise RunError("--per-class and --reference-per-class must be at least 1")
    result = write_synthetic_set(
        args.dir, config.data.class_names, config.data.eval_class_names, per_class, reference,
        args.seed, config.audio.sample_rate, config.audio.clip_samples, progress=not args.quiet,
    )
    log.info("development layout: %s\nevaluation layout:  %s", result.dev_dir, result.eval_dir)
    log.info("train on it with: foley run --data %s --reference %s", result.dev_dir, result.eval_dir)
    return 0


def _setup_logging(quiet: bool, level: int | None = None) -> None:
    """Console messages: INFO, or WARNING when quiet; `level` sets it (ERROR on ranks other than 0)."""
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(level or (logging.WARNING if quiet else logging.INFO))
    console.setFormatter(logging.Formatter("%(message)s"))
    _replace_handler("console", console)


def _log_to_file(run_dir: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(run_dir / "log.txt")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    _replace_handler("file", handler)


def _replace_handler(role: str, handler: logging.Handler) -> None:
    """Install foley's console or file handler on the root logger, replacing an earlier one."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "foley_role", None) == role]:
        root.removeHandler(old)
        old.close()
    handler.foley_role = role  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.INFO)
