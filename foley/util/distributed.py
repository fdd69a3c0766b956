"""Data-parallel training across processes (torch.distributed), and the no-op it is in one process.

Training runs with DistributedDataParallel once `start` has joined a process group (the `foley`
command does so under torchrun). Every helper here works unchanged in a single process: sums
return their input, `is_main()` is True, `wrap` returns the module itself, `on_main` just calls.
So the library calls them unconditionally and one process is a world of one.

What is kept identical across ranks, and how:
- parameters: DDP copies rank 0's parameters and buffers when it wraps the model, then averages
  gradients. It does not copy buffers again before each forward: the only buffers that change in
  training, the EMA codebooks, stay identical because their statistics are summed over ranks
  before each update (`summed`); a copy would hide a rank that drifted and throw away what the
  others learned.
- random choices that must agree (a codebook's data or k-means init, dead-code restarts, how many
  quantizer levels a step uses): every rank draws, rank 0's draw is used (`draw_rows`,
  `from_main`), so the RNG streams stay in step as well.
- work one process must do alone (writing files, the stages that do not train) runs on rank 0
  while the others wait for its result (`on_main`). They wait over a gloo group whose timeout is
  a week, so a long stage on rank 0 cannot time them out; when a process dies, torchrun stops the
  others.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from foley.util.errors import RunError

WAIT_TIMEOUT = timedelta(days=7)
# Newer torch names the switch forward_sync_buffers (and deprecates broadcast_buffers).
_NO_FORWARD_BUFFER_SYNC = (
    {"forward_sync_buffers": False}
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
    else {"broadcast_buffers": False}
)
T = TypeVar("T")
_wait_group: Any = None


def start(rank: int, world_size: int, local_rank: int, device: torch.device) -> torch.device:
    """Join the process group (NCCL for CUDA, else gloo; address and port from torchrun's env://
    settings) and return this process's device: cuda:local_rank on GPUs, `device` otherwise."""
    global _wait_group
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=world_size)
    _wait_group = dist.new_group(backend="gloo", timeout=WAIT_TIMEOUT)
    return device


def stop() -> None:
    """Leave the process group (nothing to do in one process)."""
    global _wait_group
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    _wait_group = None


def active() -> bool:
    """True when this process is one of several in a process group."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def is_main() -> bool:
    return rank() == 0


def wrap(module: nn.Module, device: torch.device) -> nn.Module:
    """`module` in DistributedDataParallel when several processes train, else itself.

    Buffers are copied from rank 0 once, at wrapping, and never again (see the module's notes).
    """
    if not active():
        return module
    # A CPU convolution over one input channel returns its weight gradient in another memory
    # layout than the weight's; DDP then copies it into its bucket, and says so once per process.
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides", category=UserWarning)
    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids, **_NO_FORWARD_BUFFER_SYNC)


def unwrap(module: nn.Module) -> nn.Module:
    """The trained module inside a DDP wrapper (what checkpoints hold), or `module` itself."""
    return module.module if isinstance(module, DistributedDataParallel) else module


def summed(tensor: torch.Tensor) -> torch.Tensor:
    """Elementwise sum of `tensor` over all ranks, on its own device (`tensor` itself in one process)."""
    if not active():
        return tensor
    total = tensor.to(_collective_device(), copy=True)
    dist.all_reduce(total)
    return total.to(tensor.device)


def summed_floats(values: list[float]) -> list[float]:
    """Each value summed over all ranks (in float64; unchanged in one process)."""
    if not active():
        return list(values)
    return summed(torch.tensor(values, dtype=torch.float64)).tolist()


def summed_dicts(values: dict[str, float]) -> dict[str, float]:
    """Per key, the sum over all ranks; a rank may lack keys (e.g. it had no validation examples)."""
    if not active():
        return dict(values)
    every: list[dict[str, float]] = [{} for _ in range(world_size())]
    dist.all_gather_object(every, values)
    total: dict[str, float] = {}
    for part in every:
        for key, value in part.items():
            total[key] = total.get(key, 0.0) + value
    return total


def gathered(value: Any) -> list[Any]:
    """Every rank's `value` (picklable), in rank order; [value] in one process."""
    if not active():
        return [value]
    every: list[Any] = [None] * world_size()
    dist.all_gather_object(every, value)
    return every


def draw_rows(rows: torch.Tensor, count: int) -> torch.Tensor:
    """`count` rows drawn with replacement (torch's global RNG) from the rows of all ranks together.

    In one process: rows[torch.randint(0, len(rows), (count,))]. Across ranks the pool is every
    rank's rows in rank order (the global batch, when ranks hold consecutive slices of it); each
    rank draws and rank 0's draw is used, so all ranks get the same rows, the same as one process
    with the whole batch would.
    """
    if not active():
        return rows[torch.randint(0, rows.shape[0], (count,), device=rows.device)]
    sizes = torch.zeros(world_size(), dtype=torch.long, device=rows.device)
    sizes[rank()] = rows.shape[0]
    sizes = summed(sizes)
    first, total = int(sizes[: rank()].sum()), int(sizes.sum())
    picks = torch.randint(0, total, (count,), device=rows.device)
    picks = from_main(picks)
    local = picks - first
    mine = (local >= 0) & (local < rows.shape[0])
    chosen = rows.new_zeros(count, *rows.shape[1:])
    chosen[mine] = rows[local[mine]]
    return summed(chosen)


def all_rows(rows: torch.Tensor) -> torch.Tensor:
    """The rows of every rank concatenated in rank order, on every rank (`rows` itself in one process)."""
    if not active():
        return rows
    sizes = torch.zeros(world_size(), dtype=torch.long, device=rows.device)
    sizes[rank()] = rows.shape[0]
    sizes = summed(sizes)
    first = int(sizes[: rank()].sum())
    pooled = rows.new_zeros(int(sizes.sum()), *rows.shape[1:])
    pooled[first : first + rows.shape[0]] = rows
    return summed(pooled)


def from_main(tensor: torch.Tensor) -> torch.Tensor:
    """Rank 0's copy of `tensor`, on every rank (`tensor` itself in one process)."""
    if not active():
        return tensor
    copy = tensor.to(_collective_device(), copy=True)
    dist.broadcast(copy, src=0)
    return copy.to(tensor.device)


def on_main(action: Callable[[], T]) -> T:
    """Run `action` on rank 0 only; the other ranks wait and get its result, or a RunError if it failed."""
    if not active():
        return action()
    outcome: tuple[str, Any] | None = None
    if is_main():
        try:
            outcome = ("done", action())
        except BaseException as err:
            _broadcast_object(("failed", f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"))
            raise
    status, value = _broadcast_object(outcome)
    if status == "failed":
        raise RunError(f"stopped because rank 0 failed ({value})")
    return value


def _broadcast_object(value: Any) -> Any:
    box = [value]
    dist.broadcast_object_list(box, src=0, group=_wait_group)
    return box[0]


def _collective_device() -> torch.device:
    """Where tensors must be for collectives: the current GPU under NCCL, the CPU under gloo."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
