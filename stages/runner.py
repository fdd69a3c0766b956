"""Run the stages in order inside one run folder, skipping those that are up to date.

Each stage records in its manifest the hash of every config section it reads and the output
hashes of the upstream stages it consumed. A stage is skipped when both are unchanged and its
outputs are intact; otherwise it re-runs (its earlier outputs are replaced, and the log says why),
and since its outputs then change, everything downstream re-runs too. A stage left unfinished by a
kill resumes: trainers continue from their last checkpoint. A stage may define preflight(config),
called for every selected stage before any runs, to refuse early what it could not do (missing
weights, a missing reference).
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from foley.atomic import write_text_atomic
from foley.config import Config, dump_config
from foley.errors import RunError
from stages import STAGE_NAMES
from stages.context import StageContext
from stages.manifest import output_files, outputs_hash, outputs_intact, read_manifest, versions, write_manifest

STAGES = tuple(importlib.import_module(f"stages.{name}") for name in STAGE_NAMES)
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
    ctx.run_dir.mkdir(parents=True, exist_ok=True)
    with run_lock(ctx.run_dir):
        write_text_atomic(ctx.run_dir / "config.yaml", dump_config(config))
        return [_run_stage(module, config, ctx, force) for module in selected]


def _run_stage(module, config: Config, ctx: StageContext, force: bool) -> StageOutcome:
    stage_dir = ctx.dir(module.NAME)
    sections = {name: config.section_hash(name) for name in module.SECTIONS}
    inputs = _inputs(module, config, ctx)
    old = read_manifest(stage_dir)
    same = old is not None and old.get("sections") == sections and old.get("inputs") == inputs
    if same and not force and old["status"] == "complete" and outputs_intact(stage_dir, old):
        log.info("%s: up to date, skipped", module.NAME)
        return StageOutcome(module.NAME, "skipped", 0.0)
    resumed = same and not force and old["status"] != "complete"
    if old is not None and not resumed:
        log.warning("%s: re-running (%s); its earlier outputs are replaced", module.NAME, _why(old, sections, inputs, force))
        shutil.rmtree(stage_dir)
    elif resumed:
        log.info("%s: resuming an unfinished run", module.NAME)
    manifest = {"stage": module.NAME, "status": "running", "sections": sections, "inputs": inputs,
                "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "versions": versions()}
    write_manifest(stage_dir, manifest)
    start = time.perf_counter()
    try:
        details = module.run(config, ctx)
    except Exception as err:
        write_manifest(stage_dir, {**manifest, "status": "failed", "error": str(err).splitlines()[0] if str(err) else type(err).__name__})
        raise
    files = output_files(stage_dir)
    seconds = time.perf_counter() - start
    write_manifest(stage_dir, {**manifest, "status": "complete", "seconds": round(seconds, 3),
                               "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "outputs": files,
                               "outputs_hash": outputs_hash(stage_dir, files), "details": details})
    log.info("%s: done in %.1f s", module.NAME, seconds)
    return StageOutcome(module.NAME, "resumed" if resumed else "ran", seconds)


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
