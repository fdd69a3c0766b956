"""Quality over seeds: one config trained with several seeds, one run folder each, and their summary.

`foley run --seeds 0,1,2 --out GROUP` runs the pipeline in GROUP/seed0, GROUP/seed1, ..., each the
run that `foley run --set seed=N --out GROUP/seedN` makes, all sharing GROUP/cache: embeddings and
class-accuracy classifiers are cached by content, so what does not depend on the seed (the
reference clips' embeddings, the classifier of the real clips) is computed once. Then it writes
GROUP/seeds.json (config, seeds, run folders) and GROUP/summary.csv + summary.md: each seed's
figures as its run folder holds them, and per class and overall their mean and spread (sample
standard deviation) over the seeds: FAD, class accuracy of the generated clips, classes apart
(closest to their own reference class in the run's FAD matrix), the quality floors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from foley.stages import STAGE_NAMES
from foley.stages.artifacts import artifact
from foley.stages.context import read_csv
from foley.stages.manifest import read_manifest
from foley.util.atomic import write_csv, write_text_atomic
from foley.util.errors import RunError

GROUP_FILE = "seeds.json"
SUMMARY_FIELDS = ("seed", "class", "fad", "accuracy", "apart", "reconstruction_floor", "vocoder_floor")
MEAN, SPREAD = "mean", "sd"


def parse_seeds(text: str) -> list[int]:
    """'0,1,2' -> [0, 1, 2]; RunError unless they are distinct integers >= 0."""
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise RunError(f"--seeds takes comma-separated integers (e.g. 0,1,2,3,4), got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise RunError(f"--seeds needs distinct integers >= 0 (e.g. 0,1,2,3,4), got {text!r}")
    return seeds


def seed_run_dir(group: Path, seed: int) -> Path:
    return group / f"seed{seed}"


def write_group_file(group: Path, config_name: str, seeds: list[int], command: str) -> None:
    record = {"config": config_name, "seeds": seeds, "runs": [seed_run_dir(Path("."), s).name for s in seeds],
              "command": command}
    write_text_atomic(group / GROUP_FILE, json.dumps(record, indent=2) + "\n")


def read_group(group: Path) -> dict:
    """A group's seeds.json; RunError when `group` is not a folder written by `foley run --seeds`."""
    path = group / GROUP_FILE
    if not path.is_file():
        raise RunError(f"'{group}' is not a group of seed runs (no {GROUP_FILE}); make one with foley run --seeds")
    return json.loads(path.read_text())


def is_group(path: Path) -> bool:
    return (path / GROUP_FILE).is_file()


def group_finished(group: Path) -> bool:
    """Whether every run of the group has finished its evaluate stage."""
    record = read_group(group)
    return all((read_manifest(group / name / "evaluate") or {}).get("status") == "complete" for name in record["runs"])


@dataclass(frozen=True)
class RunFigures:
    """One finished run's evaluation figures, per class (in the run's class order)."""

    seed: int
    class_names: tuple[str, ...]
    fad: np.ndarray
    apart: np.ndarray  # bool: the generated class is closest to its own reference class
    accuracy: np.ndarray  # generated clips; NaN when not computed
    real_accuracy: float  # held-out real clips (mean over classes); NaN when not computed
    floors: dict[str, np.ndarray]  # floor name -> per-class FAD
    seconds: float  # the stages' run times from their manifests

    @property
    def classes_apart(self) -> int:
        return int(self.apart.sum())


def read_run_figures(run_dir: Path, seed: int) -> RunFigures:
    """The figures a finished run's evaluate stage wrote (fad_matrix.csv, floors.csv, class_accuracy.csv)."""
    def table(name: str) -> list[dict[str, str]]:
        return read_csv(artifact(run_dir, "evaluate", name))

    matrix_rows = table("fad_matrix.csv")
    names = tuple(row["generated \\ reference"] for row in matrix_rows)
    matrix = np.array([[float(row[name]) for name in names] for row in matrix_rows])
    apart = np.array([row[c] < np.delete(row, c).min() for c, row in enumerate(matrix)])
    floors: dict[str, np.ndarray] = {}
    for row in table("floors.csv"):
        if row["class"] != "mean":
            floors.setdefault(row["floor"], np.full(len(names), np.nan))[names.index(row["class"])] = float(row["fad"])
    accuracy, real = np.full(len(names), np.nan), float("nan")
    for row in table("class_accuracy.csv"):
        if row["set"] == "generated" and row["class"] != "mean":
            accuracy[names.index(row["class"])] = float(row["accuracy"])
        if row["set"] == "real" and row["class"] == "mean":
            real = float(row["accuracy"])
    seconds = sum(float((read_manifest(run_dir / stage) or {}).get("seconds", 0.0)) for stage in STAGE_NAMES)
    return RunFigures(seed, names, np.diag(matrix), apart, accuracy, real, floors, seconds)


def _spread(values: np.ndarray) -> np.ndarray:
    """Sample standard deviation over the first axis (0 for a single value)."""
    return values.std(axis=0, ddof=1) if len(values) > 1 else np.zeros(values.shape[1:])


def _row(seed: str, name: str, fad: float, accuracy: float, apart: float, floors: dict[str, float]) -> dict:
    def number(value: float) -> str:
        return "" if value is None or np.isnan(value) else f"{value:.6f}"

    return {"seed": seed, "class": name, "fad": number(fad), "accuracy": number(accuracy), "apart": number(apart),
            "reconstruction_floor": number(floors.get("reconstruction", np.nan)),
            "vocoder_floor": number(floors.get("vocoder", np.nan))}


def _table(runs: list[RunFigures]) -> dict[str, np.ndarray]:
    """(runs, classes + 1) arrays; the last column is the run's mean over classes (apart: the count)."""
    def with_mean(values: np.ndarray, total: bool = False) -> np.ndarray:
        return np.append(values, values.sum() if total else values.mean())

    floor_names = sorted({name for run in runs for name in run.floors})
    table = {
        "fad": np.stack([with_mean(r.fad) for r in runs]),
        "accuracy": np.stack([with_mean(r.accuracy) for r in runs]),
        "apart": np.stack([with_mean(r.apart.astype(float), total=True) for r in runs]),
    }
    for name in floor_names:
        table[name] = np.stack([with_mean(r.floors.get(name, np.full(len(r.fad), np.nan))) for r in runs])
    return table


def summary_rows(runs: list[RunFigures]) -> list[dict]:
    """Each seed's per-class rows and its `mean` row, then the mean and the spread over the seeds."""
    names = runs[0].class_names + ("mean",)
    table = _table(runs)
    floor_keys = [k for k in table if k not in ("fad", "accuracy", "apart")]
    rows = []
    blocks = [(str(run.seed), {k: v[i] for k, v in table.items()}) for i, run in enumerate(runs)]
    blocks += [(MEAN, {k: v.mean(axis=0) for k, v in table.items()}), (SPREAD, {k: _spread(v) for k, v in table.items()})]
    for seed, values in blocks:
        for c, name in enumerate(names):
            rows.append(_row(seed, name, values["fad"][c], values["accuracy"][c], values["apart"][c],
                             {k: values[k][c] for k in floor_keys}))
    return rows


def _pm(values: np.ndarray, digits: int = 1, percent: bool = False) -> str:
    scale = 100.0 if percent else 1.0
    unit = " %" if percent else ""
    if np.isnan(values).all():
        return "n/a"
    mean, spread = float(np.nanmean(values)) * scale, float(_spread(values[~np.isnan(values)])) * scale
    return f"{mean:.{digits}f} ± {spread:.{digits}f}{unit}"


def render_summary(runs: list[RunFigures], config_name: str, command: str) -> str:
    names = runs[0].class_names
    table = _table(runs)
    recon = table.get("reconstruction")
    n = len(runs)
    lines = [
        f"# foley seeds summary: {config_name}, seeds {', '.join(str(r.seed) for r in runs)}",
        "",
        f"Command: `{command}`",
        "",
        "Each seed's figures are its run folder's (`seed<N>/evaluate/`: builtin or configured embedder, see its "
        "report.md); mean ± sample standard deviation over the seeds. Apart: the generated class is closest to its "
        "own reference class in the run's FAD matrix. Class accuracy: the generated clips classified by the "
        "run's log-mel CNN (trained on the real clips).",
        "",
        "| class | FAD | class accuracy | apart in |",
        "|---|---|---|---|",
    ]
    for c, name in enumerate(names):
        lines.append(f"| {name} | {_pm(table['fad'][:, c])} | {_pm(table['accuracy'][:, c], percent=True)} | "
                     f"{int(table['apart'][:, c].sum())} of {n} seeds |")
    lines += [f"| **mean** | **{_pm(table['fad'][:, -1])}** | **{_pm(table['accuracy'][:, -1], percent=True)}** | "
              f"**{_pm(table['apart'][:, -1])} classes** |", ""]
    lines += ["| seed | mean FAD | reconstruction floor | vocoder floor | FAD / reconstruction floor | classes apart | "
              "class accuracy (generated) | class accuracy (held-out real) | stage seconds |",
              "|---|---|---|---|---|---|---|---|---|"]
    for i, run in enumerate(runs):
        floor = recon[i, -1] if recon is not None else np.nan
        vocoder = table["vocoder"][i, -1] if "vocoder" in table else np.nan
        lines.append(f"| {run.seed} | {run.fad.mean():.1f} | {floor:.1f} | {vocoder:.1f} | {run.fad.mean() / floor:.2f} | "
                     f"{run.classes_apart} of {len(names)} | {np.nanmean(run.accuracy):.1%} | {run.real_accuracy:.1%} | "
                     f"{run.seconds:.0f} |")
    if recon is not None:
        ratio = table["fad"][:, -1].mean() / recon[:, -1].mean()
        lines += ["", f"Mean generated FAD / mean reconstruction floor: {ratio:.2f}. Classes apart in every seed: "
                  f"{min(r.classes_apart for r in runs)} of {len(names)} at least."]
    return "\n".join(lines) + "\n"


def write_summary(group: Path) -> list[Path]:
    """Read every run of the group and write summary.csv and summary.md; returns the files written."""
    record = read_group(group)
    runs = [read_run_figures(group / name, seed) for seed, name in zip(record["seeds"], record["runs"])]
    names = {run.class_names for run in runs}
    if len(names) != 1:
        raise RunError(f"the runs of '{group}' have different classes; they cannot be summarised together")
    paths = [group / "summary.csv", group / "summary.md"]
    write_csv(paths[0], SUMMARY_FIELDS, summary_rows(runs))
    write_text_atomic(paths[1], render_summary(runs, record["config"], record["command"]))
    return paths
