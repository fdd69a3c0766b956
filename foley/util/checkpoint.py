"""Atomic checkpoints that hold only tensors and plain types (loadable with weights_only=True).

A foley checkpoint is a dict:
    format       "foley-checkpoint"
    version      FORMAT_VERSION
    kind         what the model is ("autoencoder", "prior", ...)
    model_config the component's config section as plain dicts, enough to rebuild the model
    model        the unwrapped module's state dict
    ...          trainer state where saved: optimizer, epoch, step, rng, metrics

A training checkpoint is rewritten many times; `save_checkpoint(..., keep_previous=True)` keeps the
file it replaces as `<name>.prev`, and `load_newest_checkpoint` falls back to that one, with a
warning naming the bad file, when the newest is missing, corrupt or truncated (a disk that filled
up, a copy cut short). A write that fails never replaces anything: the new file is complete and
fsynced before any rename.
"""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from foley.util.atomic import atomic_path
from foley.util.errors import CheckpointError

FORMAT = "foley-checkpoint"
FORMAT_VERSION = 1
log = logging.getLogger(__name__)


def save_checkpoint(path: str | Path, payload: dict[str, Any], keep_previous: bool = False) -> None:
    """torch.save to a temporary file, fsync, then rename over the target.

    keep_previous: once the new file is written, the one it replaces becomes `<name>.prev`.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
        if keep_previous and path.exists():
            os.replace(path, previous_path(path))


def previous_path(path: str | Path) -> Path:
    """Where `save_checkpoint(path, ..., keep_previous=True)` keeps the file it replaced."""
    path = Path(path)
    return path.with_name(f"{path.name}.prev")


def load_newest_checkpoint(path: str | Path, kind: str | None = None) -> dict[str, Any] | None:
    """The checkpoint at `path`, else the previous one kept beside it; None when there is neither.

    A newest file that is missing (a kill between the two renames), corrupt or truncated is named
    in a warning and the previous one is used; when both are bad the error names both.
    """
    path = Path(path)
    candidates = [p for p in (path, previous_path(path)) if p.exists()]
    problems = []
    for candidate in candidates:
        try:
            payload = load_checkpoint(candidate, kind)
        except CheckpointError as err:
            log.warning("%s; trying the previous checkpoint", err)
            problems.append(str(err))
            continue
        if candidate != path:
            log.warning("using the previous checkpoint '%s' (the newest, '%s', is %s)", candidate, path,
                        "unreadable" if problems else "missing")
        return payload
    if problems:
        raise CheckpointError(f"{' and '.join(problems)}; delete them to start this training over")
    return None


def remove_checkpoint(path: str | Path) -> None:
    """Delete a training checkpoint and the previous one kept beside it."""
    for candidate in (Path(path), previous_path(path)):
        candidate.unlink(missing_ok=True)


def load_checkpoint(path: str | Path, kind: str | None = None) -> dict[str, Any]:
    """Load a foley checkpoint on the CPU; errors name the file and what is wrong with it."""
    payload = read_torch_file(path, "checkpoint")
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"'{path}' is not a foley checkpoint (no '{FORMAT}' format tag)")
    if payload.get("version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint '{path}' has format version {payload['version']}; this foley reads up to "
            f"{FORMAT_VERSION}: upgrade foley"
        )
    if kind is not None and payload.get("kind") != kind:
        raise CheckpointError(f"checkpoint '{path}' holds a {payload.get('kind')!r}, expected a {kind!r}")
    return payload


def read_torch_file(path: str | Path, what: str) -> Any:
    """torch.load on the CPU (weights_only); CheckpointError naming `what` and the file when it is
    missing or cannot be read (any failure inside torch.load: bad zip, bad pickle, cut short)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} '{path}' does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load fails on damaged bytes in many ways (struct, zip, pickle, EOF)
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{what} '{path}' is corrupt, truncated or not a torch file ({first})") from None


def checkpoint_header(kind: str, model_config: dict[str, Any]) -> dict[str, Any]:
    """The keys every foley checkpoint starts with."""
    return {"format": FORMAT, "version": FORMAT_VERSION, "kind": kind, "model_config": model_config}


def model_payload(kind: str, model_config: dict[str, Any], model: torch.nn.Module, **extra: Any) -> dict[str, Any]:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return {**checkpoint_header(kind, model_config), "model": state, **extra}


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch RNG state as tensors and plain types."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    state = {
        "python": [version, list(internal), gauss],
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
