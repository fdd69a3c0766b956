"""Run the stages in order inside one run folder, skipping those that are up to date.

Each stage records in its manifest the hash of every config section it reads and the output
hashes of the upstream stages it consumed. A stage is skipped when both are unchanged and its
outputs are intact; otherwise it re-runs (its earlier outputs are replaced, and the log says why),
and since its outputs then change, everything downstream re-runs too. A stage left unfinished by a
kill resumes: trainers continue from their last checkpoint. A stage may declare a preflight(config),
called for every selected stage before any runs, to refuse early what it could not do (missing
weights, a missing reference). What a stage reads is what it declares (foley.stages.stage): it
gets a view of the config limited to its sections and reads only its upstream stages' declared
outputs; after it ran, every output it declares must exist.

With several processes (torchrun) every process runs this runner. A stage declared
distributed (the trainers) runs on every rank, with DDP inside; its bookkeeping (skip
decision, manifests) is rank 0's, which the others receive. Every other stage runs on rank 0
alone while the others wait for it; so do the lock and the run's config.yaml. Files are written
by rank 0 only.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from foley.config import Config, dump_config
from foley.stages import STAGE_NAMES
from foley.stages.context import StageContext
from foley.stages.manifest import output_files, outputs_hash, outputs_intact, read_manifest, versions, write_manifest
from foley.stages.pipeline import BY_NAME, STAGES
from foley.stages.stage import Stage, config_view
from foley.util.atomic import write_text_atomic
from foley.util.distributed import is_main, on_main
from foley.util.errors import RunError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StageOutcome:
    name: str
    status: str  # "ran", "resumed" or "skipped"
    seconds: float


def run_pipeline(config: Config, ctx: StageContext, stages: tuple[str, ...] = STAGE_NAMES,
                 force: bool = False) -> list[StageOutcome]:
    unknown = [s for s in stages if s not in STAGE_NAMES]
    if unknown:
        raise RunError(f"unknown stage(s) {', '.join(unknown)}; stages are {', '.join(STAGE_NAMES)}")
    selected = [stage for stage in STAGES if stage.name in stages]
    for stage in selected:  # a stage that cannot run says so before any stage starts
        if stage.preflight is not None:
            stage.preflight(config)
    with ExitStack() as lock:  # held by rank 0 only; the others learn when it cannot be taken
        on_main(lambda: _open_run(config, ctx, lock))
        return [_run_stage(stage, config, ctx, force) for stage in selected]


def _open_run(config: Config, ctx: StageContext, lock: ExitStack) -> None:
    ctx.run_dir.mkdir(parents=True, exist_ok=True)
    lock.enter_context(run_lock(ctx.run_dir))
    write_text_atomic(ctx.run_dir / "config.yaml", dump_config(config))


def _run_stage(stage: Stage, config: Config, ctx: StageContext, force: bool) -> StageOutcome:
    ctx = replace(ctx, stage=stage, upstream={name: BY_NAME[name] for name in stage.upstream})
    if stage.distributed:
        return _run_stage_with(stage, config, ctx, force, on_main)
    return on_main(lambda: _run_stage_with(stage, config, ctx, force, _here))


def _here(action: Callable[[], Any]) -> Any:
    return action()


def _run_stage_with(stage: Stage, config: Config, ctx: StageContext, force: bool, bookkeeping: Callable) -> StageOutcome:
    """Run one stage; `bookkeeping` runs the manifest work (on rank 0, or right here)."""
    begun = bookkeeping(lambda: _begin(stage, config, ctx, force))
    if begun is None:
        return StageOutcome(stage.name, "skipped", 0.0)
    manifest, resumed = begun
    start = time.perf_counter()
    try:
        details = stage.run(config_view(config, stage), ctx)
        _check_outputs(stage, ctx.out)
    except Exception as err:
        if is_main():
            error = str(err).splitlines()[0] if str(err) else type(err).__name__
            write_manifest(ctx.out, {**manifest, "status": "failed", "error": error})
        raise
    seconds = time.perf_counter() - start
    bookkeeping(lambda: _finish(ctx, manifest, details, seconds))
    log.info("%s: done in %.1f s", stage.name, seconds)
    return StageOutcome(stage.name, "resumed" if resumed else "ran", seconds)


def _check_outputs(stage: Stage, folder: Path) -> None:
    missing = [name for name in stage.outputs if not (folder / name).exists()]
    if missing and is_main():
        raise RunError(f"stage {stage.name} finished without writing its declared output(s) {', '.join(missing)} "
                       f"in {folder}")


def _begin(stage: Stage, config: Config, ctx: StageContext, force: bool) -> tuple[dict, bool] | None:
    """Skip the stage (None), or clear or keep its folder and record it as running: (manifest, resumed)."""
    stage_dir = ctx.out
    sections = {name: config.section_hash(name) for name in stage.sections}
    inputs = _inputs(stage, config, ctx)
    old = read_manifest(stage_dir)
    same = old is not None and old.get("sections") == sections and old.get("inputs") == inputs
    if same and not force and old["status"] == "complete" and outputs_intact(stage_dir, old):
        log.info("%s: up to date, skipped", stage.name)
        return None
    resumed = same and not force and old["status"] != "complete"
    if old is not None and not resumed:
        log.warning("%s: re-running (%s); its earlier outputs are replaced", stage.name, _why(old, sections, inputs, force))
        shutil.rmtree(stage_dir)
    elif resumed:
        log.info("%s: resuming an unfinished run", stage.name)
    manifest = {"stage": stage.name, "status": "running", "sections": sections, "inputs": inputs,
                "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "versions": versions()}
    write_manifest(stage_dir, manifest)
    return manifest, resumed


def _finish(ctx: StageContext, manifest: dict, details: dict, seconds: float) -> None:
    stage_dir = ctx.out
    files = output_files(stage_dir)
    write_manifest(stage_dir, {**manifest, "status": "complete", "seconds": round(seconds, 3),
                               "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "outputs": files,
                               "outputs_hash": outputs_hash(stage_dir, files), "details": details})


def _inputs(stage: Stage, config: Config, ctx: StageContext) -> dict[str, str]:
    inputs = {}
    for upstream in stage.upstream:
        manifest = read_manifest(ctx.input(upstream))
        if manifest is None or manifest.get("status") != "complete":
            raise RunError(
                f"{stage.name} needs the outputs of {upstream}, which has not finished in {ctx.run_dir}; "
                f"run it first (foley run --stages {upstream},{stage.name})"
            )
        inputs[upstream] = manifest["outputs_hash"]
    if stage.external_inputs is not None:
        inputs["data"] = stage.external_inputs(config)
    return inputs


def _why(old: dict, sections: dict, inputs: dict, force: bool) -> str:
    if force:
        return "--force"
    changed = [name for name, value in sections.items() if old.get("sections", {}).get(name) != value]
    if changed:
        return f"config changed: {', '.join(changed)}"
    moved = [name for name, value in inputs.items() if old.get("inputs", {}).get(name) != value]
    if moved:
        return f"inputs changed: {', '.join(moved)}"
    return "its outputs are missing or were modified"


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """One foley process per run folder; a lock left by a dead process is taken over."""
    lock = run_dir / ".lock"
    if lock.exists():
        try:
            pid = int(lock.read_text().strip() or 0)
        except (OSError, ValueError):
            pid = 0
        if pid and pid != os.getpid() and _alive(pid):
            raise RunError(f"run folder {run_dir} is in use by foley process {pid}; wait for it or use another --out")
    lock.write_text(str(os.getpid()))
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
