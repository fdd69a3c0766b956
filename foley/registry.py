"""Name -> implementation tables: the one list that config checks, builders and CLI choices read.

Each table maps a name (as written in a config or on the command line) to an `Entry`: where the
implementation lives, as "module:attribute" (imported on first use, so reading the names costs no
torch import), or the object itself, and, for embedders that need pretrained weights, what file
they need. Adding an implementation is one class plus one line here (and its keys in base.yaml);
tests and plugins add their own with `register`.

What each table's implementations provide:
- QUANTIZERS: a class following foley.quantize.base.Quantizer (`from_config(dim, section)`).
- EMBEDDERS: a class following foley.evaluate.embedding.Embedder (`load(weights, device)`,
  `random(device, seed)` for speed tests).
- VOCODERS: a class following foley.vocoders.base.Vocoder (`from_config(config, trained_dir)`).
- PROTOCOLS: a foley.evaluate.protocols.Protocol instance (how clips become embedder windows).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from foley.util.errors import CheckpointError, ConfigError


@dataclass(frozen=True)
class WeightsFile:
    """A pretrained-weights file an embedder needs: nothing downloads at run time, the user gives it."""

    file: str  # the file's official name
    source: str  # where to get it
    flag: str  # the command-line option that takes its path

    def missing(self, embedder: str, path: str | Path | None) -> str:
        """The one message users get when the weights are not given or not found."""
        problem = f"no {embedder} weights were given" if path is None else f"{embedder} weights not found at '{path}'"
        return (
            f"{problem}. The {embedder} embedder needs '{self.file}', released at {self.source} ; download it on a "
            f"machine with network access and pass its path with {self.flag} (or evaluate.weights.{embedder} in the config)."
        )

    def check(self, embedder: str, path: str | Path | None) -> Path:
        """The path, when it names an existing file; else CheckpointError with `missing`'s message."""
        if path is None or not Path(path).is_file():
            raise CheckpointError(self.missing(embedder, path))
        return Path(path)


@dataclass(frozen=True)
class Entry:
    target: Any  # "module:attribute", or the implementation itself
    weights: WeightsFile | None = None

    def resolve(self) -> Any:
        if not isinstance(self.target, str):
            return self.target
        module, _, attribute = self.target.partition(":")
        return getattr(importlib.import_module(module), attribute)


class Registry:
    """The implementations of one kind, by name, in registration order."""

    def __init__(self, kind: str, entries: dict[str, Entry]) -> None:
        self.kind = kind
        self._entries = dict(entries)

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def entry(self, name: str) -> Entry:
        if name not in self._entries:
            raise ConfigError(f"unknown {self.kind} '{name}': choose one of {', '.join(self._entries)}")
        return self._entries[name]

    def get(self, name: str) -> Any:
        """The implementation registered as `name` (imported now if it was given as a string)."""
        return self.entry(name).resolve()

    def register(self, name: str, target: Any, weights: WeightsFile | None = None) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} '{name}' is already registered")
        self._entries[name] = Entry(target, weights)

    def unregister(self, name: str) -> None:
        self.entry(name)
        del self._entries[name]

    @contextmanager
    def registered(self, name: str, target: Any, weights: WeightsFile | None = None) -> Iterator[None]:
        """`name` registered for the duration of a with-block (tests)."""
        self.register(name, target, weights)
        try:
            yield
        finally:
            self.unregister(name)


QUANTIZERS = Registry("quantizer", {
    "vq": Entry("foley.quantize.ema:ResidualQuantizer"),
    "rvq": Entry("foley.quantize.ema:ResidualQuantizer"),
})

EMBEDDERS = Registry("embedder", {
    "builtin": Entry("foley.evaluate.builtin_embedder:BuiltinEmbedder"),
    "vggish": Entry("foley.models.vggish:VGGishEmbedder", WeightsFile(
        "vggish-10086976.pth",
        "https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth",
        "--vggish-weights",
    )),
})

VOCODERS = Registry("vocoder", {
    "griffinlim": Entry("foley.vocoders.griffinlim:GriffinLim"),
    "hifigan": Entry("foley.vocoders.hifigan:HiFiGANVocoder"),
})

PROTOCOLS = Registry("FAD protocol", {
    "dcase2023": Entry("foley.evaluate.protocols:DCASE2023"),
    "standard": Entry("foley.evaluate.protocols:STANDARD"),
})
