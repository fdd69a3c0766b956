"""What the embedders over a pretrained network (VGGish, PANNs) share: loading their weights and naming them.

Loading runs the same steps for each: the weights file is checked (when it is missing, one message names
the file and where to get it: its foley.registry.EMBEDDERS entry), read with torch.load(weights_only=True)
(a corrupt file: one line saying so), its state dict taken out and checked key by key, loaded strictly, and
the network frozen in eval mode on the device. An embedder's name carries the first 12 hex digits of its
weights' SHA-256, or "random-weights" for the randomly initialised network that speed tests use.

A subclass gives only what differs: its registry name, its network, where its file keeps the state dict,
how a state dict of another layout is reported, how the network takes the weights, and its framing and
embed() (foley.evaluate.embedding.Embedder).
"""

from __future__ import annotations

import hashlib
import pickle
import zipfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn as nn

from foley.registry import EMBEDDERS
from foley.util.errors import CheckpointError

RANDOM_WEIGHTS_ID = "random-weights"
UNREADABLE = (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError)  # what torch.load raises


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def frozen(model: nn.Module, device: torch.device | str) -> nn.Module:
    """The network in eval mode, without gradients, on device."""
    return model.eval().requires_grad_(False).to(device)


class PretrainedEmbedder(ABC):
    """The loading, random weights and naming of an Embedder over a pretrained network (see the module's text)."""

    registry_name: ClassVar[str]  # its name in foley.registry.EMBEDDERS (which names its weights file); prefixes its name
    title: ClassVar[str]  # the network, as messages name it ("VGGish")
    file_kind: ClassVar[str]  # what its weights file is, in the message about a corrupt one ("torch file")

    def __init__(self, model: nn.Module, weights_id: str) -> None:
        self.model = model
        self.name = f"{self.registry_name}-{weights_id}"

    @staticmethod
    @abstractmethod
    def network() -> nn.Module:
        """The network with PyTorch's default initialisation."""

    @staticmethod
    def trusted_globals() -> list:
        """What torch.load may unpickle beyond tensors and plain types (safe_globals)."""
        return []

    @staticmethod
    @abstractmethod
    def state_dict_in(content: Any, path: Path) -> dict[str, torch.Tensor]:
        """The state dict in what the weights file at path holds; CheckpointError when there is none."""

    @staticmethod
    @abstractmethod
    def check_state_dict(state: dict[str, torch.Tensor], expected: dict[str, tuple[int, ...]], source: str) -> None:
        """CheckpointError saying how the state dict differs from the network's (expected: name -> shape), if it does."""

    @staticmethod
    @abstractmethod
    def network_with(state: dict[str, torch.Tensor]) -> nn.Module:
        """The network holding the (checked) weights, loaded strictly."""

    @classmethod
    def layout(cls) -> dict[str, tuple[int, ...]]:
        """The network's state-dict names and shapes (built on the meta device: no memory, no initialisation)."""
        with torch.device("meta"):
            return {name: tuple(t.shape) for name, t in cls.network().state_dict().items()}

    @classmethod
    def read_weights(cls, path: Path) -> Any:
        """What the weights file holds; CheckpointError when torch cannot read it."""
        try:
            with torch.serialization.safe_globals(cls.trusted_globals()):
                return torch.load(path, map_location="cpu", weights_only=True)
        except UNREADABLE as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise CheckpointError(f"{cls.title} weights '{path}' are corrupt or not a {cls.file_kind} ({first})") from None

    @classmethod
    def load_network(cls, weights: str | Path | None, device: torch.device | str = "cpu") -> nn.Module:
        """The network with the weights at `weights`, checked and strictly loaded, in eval mode on device."""
        path = EMBEDDERS.entry(cls.registry_name).weights.check(cls.registry_name, weights)
        state = cls.state_dict_in(cls.read_weights(path), path)
        cls.check_state_dict(state, cls.layout(), str(path))
        return frozen(cls.network_with(state), device)

    @classmethod
    def load(cls, weights: str | Path, device: torch.device | str = "cpu") -> PretrainedEmbedder:
        """Load the weights and name the embedder by the first 12 hex digits of their SHA-256."""
        model = cls.load_network(weights, device)
        return cls(model, file_digest(Path(weights))[:12])

    @classmethod
    def random(cls, device: torch.device | str = "cpu", seed: int = 0) -> PretrainedEmbedder:
        """PyTorch's default random initialisation: the right speed, meaningless embeddings (benchmarks only)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = frozen(cls.network(), device)
        return cls(model, RANDOM_WEIGHTS_ID)
