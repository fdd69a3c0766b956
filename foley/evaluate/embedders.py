"""The one place that turns an embedder name (config evaluate.embedder, or --embedder) into an Embedder."""

from __future__ import annotations

from pathlib import Path

import torch

from foley.evaluate.builtin_embedder import BuiltinEmbedder
from foley.evaluate.embedding import Embedder
from foley.models.vggish import VGGish, VGGishEmbedder
from foley.models.vggish_weights import missing_weights_message
from foley.util.errors import CheckpointError, ConfigError

EMBEDDER_NAMES = ("builtin", "vggish")
RANDOM_WEIGHTS_ID = "random-weights"


def build_embedder(kind: str, vggish_weights: str | Path | None = None, device: torch.device | str = "cpu") -> Embedder:
    """builtin (weight-free) or vggish (the torchvggish weights at vggish_weights, required)."""
    if kind == "builtin":
        return BuiltinEmbedder()
    if kind == "vggish":
        if vggish_weights is None:
            raise CheckpointError(missing_weights_message(None))
        return VGGishEmbedder.from_file(vggish_weights, device)
    raise ConfigError(f"unknown embedder '{kind}': choose one of {', '.join(EMBEDDER_NAMES)}")


def describe_embedder(embedder: Embedder) -> str:
    """The embedder's description() where it has one, else its name."""
    describe = getattr(embedder, "description", None)
    return describe() if callable(describe) else embedder.name


def random_vggish(device: torch.device | str = "cpu", seed: int = 0) -> VGGishEmbedder:
    """VGGish with randomly initialised weights: the right speed, meaningless embeddings (benchmarks only)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = VGGish().eval().requires_grad_(False).to(device)
    return VGGishEmbedder(model, RANDOM_WEIGHTS_ID)
