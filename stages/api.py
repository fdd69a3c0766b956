"""foley's Python API for notebooks and other pipelines; `import foley` exports these names.

    import foley
    run = foley.run("quick", out="outputs/quick")           # or foley.load_run("outputs/quick")
    clips = run.generate("dog_bark", n=4, seed=7)            # clips.audio: (4, samples) float32
    clips.write("my_barks")                                  # my_barks/0001.wav ...
    scores = foley.score_folder("my_clips", "real_clips", embedder="builtin", protocol="standard")
    print(scores.table())
    foley.compare_runs(["outputs/a", "outputs/b"], "outputs/comparison")

The `foley` command is built on the same functions (run: `foley run`, Run.generate + Clips.write:
`foley generate`, score_folder: `foley fad`, compare_runs: `foley compare`).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from foley.config import Config, load_run_config, run_config
from foley.evaluate.folders import FolderScores, score_folder
from foley.stages import STAGE_NAMES
from foley.stages.artifacts import artifact
from foley.stages.compare import compare_runs
from foley.stages.context import StageContext
from foley.stages.runner import run_pipeline
from foley.stages.sample import generate_for, load_generator, write_clips
from foley.util.device import resolve_device
from foley.util.errors import RunError

__all__ = ["Clips", "FolderScores", "Run", "compare_runs", "load_run", "refuse_existing", "run", "score_folder"]


@dataclass(frozen=True)
class Clips:
    """Generated clips of one class: audio (n, samples) float32 in [-1, 1] at sample_rate."""

    class_name: str
    audio: np.ndarray
    sample_rate: int
    seed: int
    guidance: float = 1.0
    best_of: int = 1
    best_of_by: str = "prior"

    def write(self, folder: str | Path, force: bool = False) -> list[Path]:
        """folder/0001.wav ... (16-bit mono); refuses to replace existing files unless `force`."""
        refuse_existing(Path(folder), len(self.audio), force)
        return write_clips(Path(folder), list(range(len(self.audio))), self.audio, self.sample_rate)


@dataclass(frozen=True)
class Run:
    """A run folder: its resolved config and what its stages wrote."""

    path: Path
    config: Config

    def generate(self, class_name: str | int, n: int = 10, *, seed: int | None = None, device: str | None = None,
                 progress: bool = False, guidance: float | None = None, best_of: int | None = None,
                 best_of_by: str | None = None) -> Clips:
        """n new clips of a class (a name in either DCASE layout, or a class id). With the run's seed,
        guidance and best of K (the defaults), clip i equals the run's sample i of that class. `guidance`: a
        classifier-free guidance scale (other than 1 needs a prior trained with prior.label_dropout > 0);
        `best_of`: candidates per clip, kept `best_of_by` "loudness" or "prior" (the latter needs the null
        label too; foley.sample.best_of)."""
        if n < 1:
            raise RunError("n must be at least 1")
        class_id = self.class_id(class_name)
        settings = (("guidance", guidance), ("best_of", best_of), ("best_of_by", best_of_by))
        overrides = [f"sample.{key}={value}" for key, value in settings if value is not None]
        config = load_run_config(self.path, overrides) if overrides else self.config
        generator = load_generator(config, self.artifact, resolve_device(device or config.device))
        seed = config.seed if seed is None else seed
        result = generate_for(config, generator, [class_id] * n, list(range(n)), seed, progress, self.artifact)
        name = config.data.eval_class_names[class_id]
        return Clips(name, result.audio, config.audio.sample_rate, seed, config.sample.guidance, config.sample.best_of,
                     config.sample.best_of_by)

    def scores(self) -> list[dict[str, str]]:
        """The rows of the run's evaluate/fad.csv (one per class, then the mean)."""
        with open(self.artifact("evaluate", "fad.csv"), newline="") as handle:
            return list(csv.DictReader(handle))

    def artifact(self, stage: str, output: str | None = None) -> Path:
        """A declared output of one of the run's finished stages (its folder when output is None)."""
        return artifact(self.path, stage, output)

    def class_id(self, name: str | int) -> int:
        data = self.config.data
        for names in (data.eval_class_names, data.class_names):
            if name in names:
                return names.index(name)
        text = str(name)
        if text.isdigit() and int(text) < self.config.class_count:
            return int(text)
        raise RunError(f"unknown class '{name}'; classes: {', '.join(data.eval_class_names)} "
                       f"(or 0-{self.config.class_count - 1})")


def refuse_existing(folder: Path, n: int, force: bool) -> None:
    """RunError when clips 0001.wav .. n would replace files in `folder` (unless `force`)."""
    existing = [folder / f"{i + 1:04d}.wav" for i in range(n) if (folder / f"{i + 1:04d}.wav").exists()]
    if existing and not force:
        raise RunError(f"{existing[0]} already exists ({len(existing)} clips would be replaced); use another "
                       "folder (--out) or force (--force)")


def load_run(path: str | Path) -> Run:
    """The run in `path` (the --out of a `foley run`)."""
    path = Path(path)
    config_path = path / "config.yaml"
    if not config_path.is_file():
        raise RunError(f"'{path}' is not a foley run folder (no config.yaml); give the --out of a `foley run`")
    return Run(path, load_run_config(path))


def run(config: str | Path | None = None, *, out: str | Path | None = None, data: str | Path | None = None,
        reference: str | Path | None = None, device: str | None = None, overrides: Sequence[str] = (),
        stages: Sequence[str] | None = None, force: bool = False, progress: bool = True) -> Run:
    """Run (or resume) the pipeline in this process, as `foley run` does on one process; returns the run."""
    resolved = run_config(config, data=data, reference=reference, device=device, overrides=overrides)
    run_dir = Path(out) if out else Path("outputs") / resolved.name
    ctx = StageContext(run_dir=run_dir, device=resolve_device(resolved.device), progress=progress)
    run_pipeline(resolved, ctx, tuple(stages) if stages else STAGE_NAMES, force=force)
    return load_run(run_dir)
