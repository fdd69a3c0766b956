"""What a report page reads from a run folder: files found through the stages' declarations, CSV
rows, manifests, and relative links from the page to the files it shows."""

from __future__ import annotations

import csv
import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from foley.config import MelConfig, section_from_dict
from foley.stages.artifacts import OUTPUTS, artifact
from foley.stages.manifest import read_manifest
from foley.util.errors import RunError

MEAN_ROWS = ("mean", "average")


def run_file(run_dir: Path, stage: str, name: str) -> Path:
    """A file a stage wrote (finished or not): through its declaration when the stage declares it; else
    in the stage's folder (files no other stage reads: train_vocoder's metrics.csv, evaluate's floors)."""
    if name in OUTPUTS[stage]:
        return artifact(run_dir, stage, name, finished=False)
    return artifact(run_dir, stage, finished=False) / name


def read_rows(path: Path) -> list[dict[str, str]] | None:
    """A CSV's rows, or None when the file is absent or holds no rows."""
    if not path.is_file():
        return None
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return rows or None


def manifest(run_dir: Path, stage: str) -> dict[str, Any] | None:
    return read_manifest(artifact(run_dir, stage, finished=False))


@dataclass(frozen=True)
class RunSettings:
    """What a page needs of a run's config.yaml: only these keys are read, so that the config of a run
    folder made before keys were added still opens."""

    name: str
    class_names: tuple[str, ...]  # data.eval_class_names: the folders of the generated and reference clips
    mel: MelConfig
    text: str  # config.yaml as the run wrote it


def run_settings(run_dir: Path) -> RunSettings:
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise RunError(f"'{run_dir}' is not a foley run folder (no config.yaml); give the --out of a `foley run`")
    text = path.read_text()
    config = yaml.safe_load(text)
    try:
        names = tuple(config["data"]["eval_class_names"])
        return RunSettings(config["name"], names, section_from_dict(MelConfig, config["mel"], "mel"), text)
    except (KeyError, TypeError) as err:
        raise RunError(f"'{path}' lacks {err} (name, data.eval_class_names and mel are needed); is it a foley run's "
                       "config.yaml?") from None


def href(path: Path, page_dir: Path) -> str:
    """A relative link from a page in `page_dir` to `path`, URL-quoted."""
    return urllib.parse.quote(Path(os.path.relpath(Path(path).absolute(), Path(page_dir).absolute())).as_posix())


def is_number(text: str) -> bool:
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return True
