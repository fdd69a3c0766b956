"""Embedders by name: the registry's entry (foley.registry.EMBEDDERS) loaded with its weights."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from foley.evaluate.embedding import Embedder
from foley.registry import EMBEDDERS

Weights = Mapping[str, "str | Path | None"]  # embedder name -> path of its weights (config evaluate.weights)


def check_weights(name: str, weights: Weights) -> Path | None:
    """The path of `name`'s weights file when it needs one (CheckpointError naming the file and where to
    get it when it is not given or missing); None for a weight-free embedder."""
    entry = EMBEDDERS.entry(name)
    return None if entry.weights is None else entry.weights.check(name, weights.get(name))


def build_embedder(name: str, weights: Weights | None = None, device: torch.device | str = "cpu") -> Embedder:
    """The embedder registered as `name`, with its weights from `weights` where it needs them."""
    path = check_weights(name, weights or {})
    return EMBEDDERS.get(name).load(path, device)


def random_embedder(name: str, device: torch.device | str = "cpu", seed: int = 0) -> Embedder:
    """The embedder's network with random weights: the right speed, meaningless embeddings (benchmarks)."""
    return EMBEDDERS.get(name).random(device, seed)


def describe_embedder(embedder: Embedder) -> str:
    """The embedder's description() where it has one, else its name."""
    describe = getattr(embedder, "description", None)
    return describe() if callable(describe) else embedder.name
