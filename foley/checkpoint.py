"""Atomic checkpoints that hold only tensors and plain types (loadable with weights_only=True).

A foley checkpoint is a dict:
    format       "foley-checkpoint"
    version      FORMAT_VERSION
    kind         what the model is ("autoencoder", "prior", ...)
    model_config the component's config section as plain dicts, enough to rebuild the model
    model        the unwrapped module's state dict
    ...          trainer state where saved: optimizer, epoch, step, rng, metrics
"""

from __future__ import annotations

import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from foley.atomic import atomic_path
from foley.errors import CheckpointError

FORMAT = "foley-checkpoint"
FORMAT_VERSION = 1


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """torch.save to a temporary file, fsync, then rename over the target."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | Path, kind: str | None = None) -> dict[str, Any]:
    """Load a foley checkpoint on the CPU; errors name the file and what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"checkpoint '{path}' is corrupt or truncated ({first})") from None
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
