"""Starting `foley run` on several processes: under torchrun, or through `foley run --nproc N`.

torchrun (torch.distributed.run) starts N copies of the command and tells each its place in the
environment (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, and the rendezvous address that
torch.distributed reads itself); `from_environment` reads it, here in the command line because
the library takes its settings through its API. Every copy runs the pipeline runner: the training
stages run on all of them with DDP, every other stage on rank 0 while the others wait
(foley.stages.runner). `--nproc N` runs torchrun itself, inside this process, on this machine, with the
same arguments but --nproc (torchrun's own parser would take it for --nproc-per-node); the copies
find RANK set, so they do not start torchrun again, and the command to resume in RESUME_VARIABLE.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from foley.util.errors import RunError

VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")
RESUME_VARIABLE = "FOLEY_RESUME_COMMAND"  # set by --nproc for the processes it starts


@dataclass(frozen=True)
class Launch:
    """This process's place among the processes torchrun started."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int

    @property
    def nodes(self) -> int:
        return self.world_size // self.local_world_size


def from_environment(environ: Mapping[str, str] = os.environ) -> Launch | None:
    """The Launch torchrun describes in `environ`; None when this process was not started by it."""
    if "RANK" not in environ or "WORLD_SIZE" not in environ:
        return None
    try:
        rank, world, local_rank, local_world = (int(environ.get(name, default)) for name, default in
                                                zip(VARIABLES, ("0", "1", "0", environ["WORLD_SIZE"])))
    except ValueError:
        found = ", ".join(f"{name}={environ.get(name)!r}" for name in VARIABLES)
        raise RunError(f"torchrun's process variables must be whole numbers, found {found}") from None
    return Launch(rank, world, local_rank, local_world)


def check_nproc(nproc: int | None, launch: Launch | None, cuda: bool, gpus: int) -> None:
    """Refuse a --nproc that cannot work: below 1, more than the GPUs, or unlike torchrun's count."""
    if nproc is None:
        return
    if nproc < 1:
        raise RunError(f"--nproc must be at least 1, got {nproc}")
    if launch is not None and launch.world_size != nproc:
        raise RunError(f"--nproc {nproc} but torchrun started {launch.world_size} processes; give one of the two")
    if cuda and nproc > gpus:
        raise RunError(f"--nproc {nproc} needs {nproc} GPUs (one per process) and this machine has {gpus}; "
                       "use fewer processes or --device cpu")


def relaunch(nproc: int, argv: list[str]) -> int:
    """Run `foley <argv>` as `nproc` processes under torchrun here; their exit code.

    torchrun forwards SIGINT/SIGTERM to the processes and gives them 30 s to checkpoint and stop.
    """
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun

    os.environ[RESUME_VARIABLE] = shlex.join(["foley", *argv])
    try:
        torchrun(["--standalone", f"--nproc_per_node={nproc}", "-m", "foley", *without_option(argv, "--nproc")])
    except ChildFailedError as err:
        _, failure = err.get_first_failure()
        return failure.exitcode if failure.exitcode > 0 else 128 - failure.exitcode
    except SignalException as err:
        return 128 + int(err.sigval)
    return 0


def without_option(argv: list[str], option: str) -> list[str]:
    """`argv` less `option` and its value (written `--opt V`, `--opt=V`, or abbreviated as argparse allows)."""
    kept, value_next = [], False
    for token in argv:
        if value_next:
            value_next = False
            continue
        name = token.split("=", 1)[0]
        if name.startswith("--") and len(name) > 2 and option.startswith(name):
            value_next = "=" not in token
            continue
        kept.append(token)
    return kept


def resume_command(argv: list[str], launch: Launch | None, environ: Mapping[str, str] = os.environ) -> str:
    """The command that resumes this run: the same arguments, started the way this one was."""
    command = shlex.join(["foley", *argv])
    if launch is None:
        return command
    if RESUME_VARIABLE in environ:
        return environ[RESUME_VARIABLE]
    torchrun = f"torchrun --nproc_per_node {launch.local_world_size}"
    if launch.nodes > 1:
        torchrun += f" --nnodes {launch.nodes} (and your rendezvous options, on every node)"
    return f"{torchrun} -m {command}"
