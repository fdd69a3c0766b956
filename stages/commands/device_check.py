"""`foley gpu-check`: one command that checks and times foley on this machine's accelerator.

The steps (``check_plan``) are ordinary commands, each written down as a user would type it:
the device tests (``pytest -m device`` with FOLEY_TEST_DEVICE set, from a checkout's tests/),
``foley bench sample`` (the baseline prior; on a GPU the 700-clip DCASE set, prior + decode +
vocode), ``foley bench train`` (prior in float32, with TF32, bf16 autocast and torch.compile;
autoencoder), ``foley bench vocoder``, ``foley bench fad`` and, on a machine with two GPUs or
more, a toy run on two processes (torchrun, NCCL). ``foley`` commands run in this process, the
others in a subprocess; a step that fails is recorded and the next one runs. The summary is
written as device-check.json and device-check.md.

``reduced``: the same steps at the smallest sizes on the CPU (the 700-clip set and the
two-process run need a GPU and are skipped with that reason): what CI runs, to keep this code
working on machines without a GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from foley.util.errors import RunError

TEST_DEVICE_VARIABLE = "FOLEY_TEST_DEVICE"  # read by tests/conftest.py's test_device fixture
TAIL_LINES = 40  # lines of a subprocess's output kept in the summary
STEP_TIMEOUT_S = 1800
STEP_NAMES = ("tests", "sample", "train prior", "train prior tf32", "train prior amp", "train prior compile",
              "train autoencoder", "vocoder", "fad", "nccl")


@dataclass(frozen=True)
class Step:
    name: str
    command: tuple[str, ...]  # starts with "foley" (run here) or "python" (a subprocess of this interpreter)
    env: dict[str, str] = field(default_factory=dict)
    json_output: bool = False
    skip: str | None = None  # why the step does not run here


@dataclass
class StepResult:
    name: str
    command: str
    status: str  # passed, failed or skipped
    seconds: float
    output: Any  # the step's JSON, or its text output (the last TAIL_LINES lines of a subprocess)
    note: str = ""  # why it failed or was skipped


def check_plan(device: str, gpus: int, reduced: bool, tests: Path | None, out: Path) -> list[Step]:
    """The steps for ``device`` ("cuda" or "cpu") on a machine with ``gpus`` GPUs."""
    size, batch = ("small", "2") if reduced else ("baseline", "16")
    small = ("--batch-sizes", "1", "--repeats", "1") if reduced else ()
    sample = ("--map", "4x6", "--reference-rows", "0", "--dcase-set", "off") if reduced else ("--dcase-set", "on")
    train = ("foley", "bench", "train", "--size", size, "--batch", batch, "--device", device, "--json", "-q")
    train_steps = ("--steps", "1") if reduced else ()
    no_tests = None if tests is not None else "no tests/ folder: run from a checkout of foley or pass --tests"
    nccl_skip = None if gpus >= 2 and device == "cuda" else f"needs 2 GPUs, this machine has {gpus}"
    return [
        Step("tests", ("python", "-m", "pytest", "-q", "-n", "0", "-m", "device", "-p", "no:cacheprovider", str(tests)),
             env={TEST_DEVICE_VARIABLE: device}, skip=no_tests),
        Step("sample", ("foley", "bench", "sample", "--size", size, "--batch", batch, *sample, "--device", device,
                        "--json", "-q"), json_output=True),
        Step("train prior", (*train, "--model", "prior", *train_steps), json_output=True),
        Step("train prior tf32", (*train, "--model", "prior", "--tf32", *train_steps), json_output=True),
        Step("train prior amp", (*train, "--model", "prior", "--amp", *train_steps), json_output=True),
        Step("train prior compile", (*train, "--model", "prior", "--compile", *train_steps), json_output=True,
             skip="torch.compile needs a GPU here (minutes of compilation on the CPU)" if reduced else None),
        Step("train autoencoder", (*train, "--model", "autoencoder", *train_steps), json_output=True),
        Step("vocoder", ("foley", "bench", "vocoder", "--device", device, *small, "-q")),
        Step("fad", ("foley", "bench", "fad", "--embedder", "vggish", "--device", device, *small, "-q")),
        Step("nccl", ("foley", "run", "--config", "toy", "--nproc", "2", "--device", device, "--quiet",
                      "--out", str(out / "nccl-run"), "--force"), skip=nccl_skip),
    ]


def run_check(steps: list[Step], skip: set[str] = frozenset(),
              after_step: Callable[[list[StepResult]], None] | None = None) -> list[StepResult]:
    """Every step in order; ``skip``: names left out at the user's request. ``after_step`` is called
    with the results so far after each step (the command writes its summary then, so that a check
    stopped part-way still leaves the steps it finished)."""
    results = []
    for step in steps:
        reason = "left out (--skip)" if step.name in skip else step.skip
        if reason is not None:
            results.append(StepResult(step.name, _shell(step), "skipped", 0.0, None, reason))
        else:
            results.append(run_step(step))
            _release_device_memory()
        if after_step is not None:
            after_step(results)
    return results


def run_step(step: Step) -> StepResult:
    start = time.perf_counter()
    if step.command[0] == "foley":
        code, output, note = _run_foley(step.command[1:])
    else:
        code, output, note = _run_process(step)
    seconds = time.perf_counter() - start
    if code == 0 and step.json_output:
        try:
            output = json.loads(output)
        except json.JSONDecodeError as err:
            code, note = 1, f"expected one JSON object: {err}"
    return StepResult(step.name, _shell(step), "passed" if code == 0 else "failed", seconds, output, note)


def _run_foley(argv: tuple[str, ...]) -> tuple[int, str, str]:
    """(exit code, standard output, error) of ``foley argv`` run in this process."""
    from foley.stages.commands.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = main(list(argv))
    except Exception as err:  # noqa: BLE001 - one failed step is recorded and the check goes on
        return 1, stdout.getvalue(), f"{type(err).__name__}: {err}"
    return code, stdout.getvalue(), _tail(stderr.getvalue()) if code else ""


def _run_process(step: Step) -> tuple[int, str, str]:
    command = [sys.executable if step.command[0] == "python" else step.command[0], *step.command[1:]]
    try:
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **step.env},
                              timeout=STEP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return 1, "", f"stopped after {STEP_TIMEOUT_S} s"
    output = _tail(done.stdout + done.stderr)
    return done.returncode, output, "" if done.returncode == 0 else f"exit status {done.returncode}"


def _tail(text: str) -> str:
    return "\n".join(text.strip().splitlines()[-TAIL_LINES:])


def _shell(step: Step) -> str:
    variables = " ".join(f"{key}={value}" for key, value in step.env.items())
    return f"{variables} {' '.join(step.command)}".strip()


def _release_device_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    import torch

    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "gpus": gpus, "cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "load_average": os.getloadavg()[0], "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def write_summary(out: Path, info: dict[str, Any], results: list[StepResult]) -> tuple[Path, Path]:
    """device-check.json and device-check.md in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    json_path, markdown_path = summary_paths(out)
    json_path.write_text(json.dumps({"machine": info, "steps": [asdict(r) for r in results]}, indent=2) + "\n")
    markdown_path.write_text(markdown(info, results))
    return json_path, markdown_path


def summary_paths(out: Path) -> tuple[Path, Path]:
    return out / "device-check.json", out / "device-check.md"


def markdown(info: dict[str, Any], results: list[StepResult]) -> str:
    gpus = ", ".join(info["gpus"]) or "none"
    lines = [f"# foley device check, {info['date']}", "",
             f"GPUs: {gpus}; torch {info['torch']} (CUDA {info['cuda']}), Python {info['python']}, "
             f"{info['cpu_cores']} CPU cores, {info['torch_threads']} torch threads, load average {info['load_average']:.2f}",
             "", "| step | status | seconds | result | command |", "|---|---|---:|---|---|"]
    for r in results:
        lines.append(f"| {r.name} | {r.status} | {r.seconds:.1f} | {headline(r)} | `{r.command}` |")
    for r in results:
        if r.status != "skipped" and isinstance(r.output, str) and r.output.strip():
            lines += ["", f"## {r.name}", "", "```", r.output.strip(), "```"]
    return "\n".join(lines) + "\n"


def headline(result: StepResult) -> str:
    """The step's key figures in a few words (its note when it did not pass)."""
    if result.status != "passed":
        return result.note.replace("\n", " ").replace("|", "/")[:200]
    data = result.output
    if isinstance(data, dict) and "fast" in data and "ratio" in data:  # bench train
        peak = lambda path: "n/a" if data[path]["peak_mib"] is None else f"{data[path]['peak_mib']:.0f} MiB"
        return (f"reference {data['reference']['step_s']:.3f} s/step, fast {data['fast']['step_s']:.3f} s/step "
                f"({data['ratio']:.2f}x); peak {peak('reference')} / {peak('fast')}")
    if isinstance(data, dict) and "fast_s_per_clip" in data:  # bench sample
        text = (f"reference {data['reference_s_per_clip']:.3g} s/clip, fast {data['fast_s_per_clip']:.3g} s/clip "
                f"({data['ratio']:.0f}x)")
        dcase = data.get("dcase_set")
        return text if not dcase else f"{text}; {dcase['clips']} DCASE clips ({dcase['stages']}) in {dcase['seconds']:.1f} s"
    return "see below" if isinstance(data, str) and data.strip() else ""


def add_gpu_check(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    check = commands.add_parser("gpu-check", parents=[common],
                                help="test and time foley on this machine's GPU: device-check.json + device-check.md")
    check.add_argument("--out", type=Path, default=Path("outputs") / "gpu-check",
                       help="summary folder (default outputs/gpu-check)")
    check.add_argument("--reduced", action="store_true", help="the smallest sizes on the CPU (what CI runs)")
    check.add_argument("--tests", type=Path, help="a foley checkout's tests/ folder (default ./tests when present)")
    check.add_argument("--skip", default="", help=f"comma-separated steps to leave out ({', '.join(STEP_NAMES)})")
    check.set_defaults(handler=cmd_gpu_check)


def cmd_gpu_check(args: argparse.Namespace) -> int:
    skip = {name.strip() for name in args.skip.split(",") if name.strip()}
    if skip - set(STEP_NAMES):
        raise RunError(f"--skip: no step {', '.join(sorted(skip - set(STEP_NAMES)))}; steps: {', '.join(STEP_NAMES)}")
    tests = args.tests or (Path("tests") if (Path("tests") / "conftest.py").exists() else None)
    if tests is not None and not (tests / "conftest.py").exists():
        raise RunError(f"--tests {tests}: not a foley tests/ folder (no conftest.py)")
    import torch

    gpus = torch.cuda.device_count()
    if not args.reduced and gpus == 0:
        raise RunError("gpu-check needs a CUDA GPU and torch sees none; "
                       "`foley gpu-check --reduced` runs the reduced check on the CPU")
    steps = check_plan("cpu" if args.reduced else "cuda", gpus, args.reduced, tests, args.out)
    info = machine()

    def after_step(results: list[StepResult]) -> None:
        write_summary(args.out, info, results)
        done = results[-1]
        print(f"gpu-check {len(results)}/{len(steps)} {done.name}: {done.status} ({done.seconds:.1f} s) "
              f"{headline(done)}", file=sys.stderr, flush=True)

    results = run_check(steps, skip, after_step)
    json_path, markdown_path = summary_paths(args.out)
    failed = [r.name for r in results if r.status == "failed"]
    print(f"{len(results) - len(failed)} of {len(results)} steps passed or skipped"
          f"{'; failed: ' + ', '.join(failed) if failed else ''}; summary: {markdown_path}, {json_path}")
    return 1 if failed else 0
