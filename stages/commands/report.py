"""`foley report RUN_DIR`: (re)build a run's HTML report from the files it holds; runs no stage."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger("foley")


def add_report_command(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    report = commands.add_parser("report", parents=[common],
                                 help="(re)build a run's HTML report, evaluate/report.html, from its files (runs nothing)")
    report.add_argument("run_dir", type=Path, help="the --out of a `foley run` (finished or not: it shows what is there)")
    report.set_defaults(handler=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from foley.stages.report import write_run_report

    path = write_run_report(args.run_dir)
    log.info("wrote %s; open it in a browser (file://%s)", path, path.resolve())
    return 0
