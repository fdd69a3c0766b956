"""Run the stages in order inside one run folder, skipping those that are up to date.

Each stage records in its manifest the hash of every config section it reads and the output
hashes of the upstream stages it consumed. A stage is skipped when both are unchanged and its
outputs are intact; otherwise it re-runs (its earlier outputs are replaced, and the log says why),
and since its outputs then change, everything downstream re-runs too. A stage left unfinished by a
kill resumes: trainers continue from their last checkpoint. A stage may define preflight(config),
called for every selected stage before any runs, to refuse early what it could not do (missing
weights, a missing reference).

With several processes (torchrun) every process runs this runner. A stage that declares
DISTRIBUTED = True (the trainers) runs on every rank, with DDP inside; its bookkeeping (skip
decision, manifests) is rank 0's, which the others receive. Every other stage runs on rank 0
alone while the others wait for it; so do the lock and the run's config.yaml. Files are written
by rank 0 only.
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from foley.config import Config, dump_config
from foley.stages import STAGE_NAMES
from foley.stages.context import StageContext
from foley.stages.manifest import output_files, outputs_hash, outputs_intact, read_manifest, versions, write_manifest
from foley.util.atomic import write_text_atomic
from foley.util.distributed import is_main, on_main
from foley.util.errors import RunError

STAGES = tuple(importlib.import_module(f"foley.stages.{name}") for name in STAGE_NAMES)
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
    selected = [module for module in STAGES if module.NAME in stages]
    for module in selected:  # a stage that cannot run says so before any stage starts
        if hasattr(module, "preflight"):
            module.preflight(config)
    with ExitStack() as lock:  # held by rank 0 only; the others learn when it cannot be taken
        on_main(lambda: _open_run(config, ctx, lock))
        return [_run_stage(module, config, ctx, force) for module in selected]


def _open_run(config: Config, ctx: StageContext, lock: ExitStack) -> None:
    ctx.run_dir.mkdir(parents=True, exist_ok=True)
    lock.enter_context(run_lock(ctx.run_dir))
    write_text_atomic(ctx.run_dir / "config.yaml", dump_config(config))


def _run_stage(module, config: Config, ctx: StageContext, force: bool) -> StageOutcome:
    if getattr(module, "DISTRIBUTED", False):
        return _run_stage_with(module, config, ctx, force, on_main)
    return on_main(lambda: _run_stage_with(module, config, ctx, force, _here))


def _here(action: Callable[[], Any]) -> Any:
    return action()


def _run_stage_with(module, config: Config, ctx: StageContext, force: bool, bookkeeping: Callable) -> StageOutcome:
    """Run one stage; `bookkeeping` runs the manifest work (on rank 0, or right here)."""
    begun = bookkeeping(lambda: _begin(module, config, ctx, force))
    if begun is None:
        return StageOutcome(module.NAME, "skipped", 0.0)
    manifest, resumed = begun
    start = time.perf_counter()
    try:
        details = module.run(config, ctx)
    except Exception as err:
        if is_main():
            write_manifest(ctx.dir(module.NAME), {**manifest, "status": "failed", "error": str(err).splitlines()[0] if str(err) else type(err).__name__})
        raise
    seconds = time.perf_counter() - start
    bookkeeping(lambda: _finish(module, ctx, manifest, details, seconds))
    log.info("%s: done in %.1f s", module.NAME, seconds)
    return StageOutcome(module.NAME, "resumed" if resumed else "ran", seconds)


def _begin(module, config: Config, ctx: StageContext, force: bool) -> tuple[dict, bool] | None:
    """Skip the stage (None), or clear or keep its folder and record it as running: (manifest, resumed)."""
    stage_dir = ctx.dir(module.NAME)
    sections = {name: config.section_hash(name) for name in module.SECTIONS}
    inputs = _inputs(module, config, ctx)
    old = read_manifest(stage_dir)
    same = old is not None and old.get("sections") == sections and old.get("inputs") == inputs
    if same and not force and old["status"] == "complete" and outputs_intact(stage_dir, old):
        log.info("%s: up to date, skipped", module.NAME)
        return None
    resumed = same and not force and old["status"] != "complete"
    if old is not None and not resumed:
        log.warning("%s: re-running (%s); its earlier outputs are replaced", module.NAME, _why(old, sections, inputs, force))
        shutil.rmtree(stage_dir)
    elif resumed:
        log.info("%s: resuming an unfinished run", module.NAME)
    manifest = {"stage": module.NAME, "status": "running", "sections": sections, "inputs": inputs,
                "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "versions": versions()}
    write_manifest(stage_dir, manifest)
    return manifest, resumed


def _finish(module, ctx: StageContext, manifest: dict, details: dict, seconds: float) -> None:
    stage_dir = ctx.dir(module.NAME)
    files = output_files(stage_dir)
    write_manifest(stage_dir, {**manifest, "status": "complete", "seconds": round(seconds, 3),
                               "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "outputs": files,
                               "outputs_hash": outputs_hash(stage_dir, files), "details": details})


def _inputs(module, config: Config, ctx: StageContext) -> dict[str, str]:
    inputs = {}
    for upstream in module.UPSTREAM:
        manifest = read_manifest(ctx.dir(upstream))
        if manifest is None or manifest.get("status") != "complete":
            raise RunError(
                f"{module.NAME} needs the outputs of {upstream}, which has not finished in {ctx.run_dir}; "
                f"run it first (foley run --stages {upstream},{module.NAME})"
            )
        inputs[upstream] = manifest["outputs_hash"]
    if hasattr(module, "external_inputs"):
        inputs["data"] = module.external_inputs(config)
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
