"""What a stage declares: its name, the config it reads, the stages it reads from, what it writes.

The runner (foley.stages.runner) hashes exactly the declared config sections to decide whether a
stage is up to date, hands the stage a view of the config in which every other key is an error
(so a parameter the stage reads cannot be left out of its hash), lets it read only the declared
outputs of its declared upstream stages (StageContext.input), and checks after it ran that every
declared output exists.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from foley.config import Config
from foley.util.errors import RunError

ALWAYS_READABLE = ("name",)  # the run's label: named in reports, never a parameter


@dataclass(frozen=True)
class Stage:
    name: str
    sections: tuple[str, ...]  # config sections it reads; dotted names ("vocoder.type") for parts of one
    upstream: tuple[str, ...]  # stages whose outputs it reads
    outputs: tuple[str, ...]  # files or folders (relative to its folder) that others may read; all written by run
    run: Callable[..., dict]  # run(config view, StageContext) -> details for its manifest
    distributed: bool = False  # runs on every process under torchrun (trainers); else rank 0 alone
    preflight: Callable[[Config], None] | None = None  # refuses early, before any stage runs
    external_inputs: Callable[[Config], str] | None = None  # fingerprint of files read from outside the run


def section_tree(sections: tuple[str, ...]) -> dict[str, Any]:
    """Dotted section names -> a tree in which True marks a wholly readable node."""
    tree: dict[str, Any] = {}
    for dotted in sections:
        node = tree
        *parents, last = dotted.split(".")
        for part in parents:
            child = node.setdefault(part, {})
            if child is True:
                break
            node = child
        else:
            node[last] = True
    return tree


class ConfigView:
    """A config, or part of one, of which a stage may read only what it declared.

    Reading an undeclared key raises RunError naming the stage and the key. Properties and methods
    of the config classes run on the view, so what they read is checked too (e.g. `class_count`
    reads data.class_names).
    """

    def __init__(self, target: Any, allowed: Mapping[str, Any], stage: str, path: str = "") -> None:
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_allowed", allowed)
        object.__setattr__(self, "_stage", stage)
        object.__setattr__(self, "_path", path)

    def __getattr__(self, name: str) -> Any:
        target, path = self._target, self._path
        key = f"{path}.{name}" if path else name
        if dataclasses.is_dataclass(target) and name in {f.name for f in dataclasses.fields(target)}:
            return self._field(name, key)
        attribute = getattr(type(target), name, None)
        if isinstance(attribute, property):
            return attribute.fget(self)
        if isinstance(attribute, types.FunctionType):
            return types.MethodType(attribute, self)
        return getattr(target, name)

    def _field(self, name: str, key: str) -> Any:
        allowed = self._allowed.get(name)
        if allowed is None and not self._path and name in ALWAYS_READABLE:
            allowed = True
        if allowed is None:
            raise RunError(f"stage {self._stage} reads config key '{key}' but does not declare it; add "
                           f"'{key}' to the sections of its Stage declaration (its hash must cover what it reads)")
        value = getattr(self._target, name)
        return value if allowed is True else ConfigView(value, allowed, self._stage, key)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a config is read-only")

    def __repr__(self) -> str:
        return f"ConfigView({self._path or 'config'} for stage {self._stage})"


def config_view(config: Config, stage: Stage) -> Any:
    """The config as `stage` may read it: its declared sections (and the run's name) only."""
    return ConfigView(config, section_tree(stage.sections), stage.name)
