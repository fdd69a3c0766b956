"""Loading configs: layered YAML files, command-line overrides, typed and checked construction.

A config file is a YAML mapping; `include: other.yaml` (a path relative to the file, or the name
of a built-in config) is loaded first and the file's keys are merged over it. Every key must be
known: an unknown key fails with the nearest valid key suggested, and every value is checked once,
at load, so a bad config fails before any work starts.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.resources
import math
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from foley.config.schema import Config, to_plain
from foley.util.errors import ConfigError

DEFAULT_CONFIG = "quick"


def load_config(source: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Load a config by built-in name (`quick`, `rvq`, ...) or YAML path, then apply `key=value` overrides."""
    path = resolve_config_path(source or DEFAULT_CONFIG)
    document = _read_layered(path, seen=())
    document.setdefault("name", path.stem)
    for override in overrides:
        _apply_override(document, override)
    return config_from_dict(document)


def run_config(config: str | Path | None = None, *, data: str | Path | None = None,
               reference: str | Path | None = None, device: str | None = None,
               overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """A config by built-in name or YAML path, with the data folders (data.root, data.reference), the
    device and `key=value` overrides: what `foley run` and foley.run() start from."""
    extra = [f"{key}={value}" for key, value in (("data.root", data), ("data.reference", reference),
                                                 ("device", device)) if value is not None]
    return load_config(config, list(overrides) + extra)


def config_from_dict(document: Mapping[str, Any]) -> Config:
    return _build(Config, document, "")


def load_run_config(run_dir: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """A run folder's resolved config.yaml, then `key=value` overrides.

    Keys added to foley after the run was made (absent from its config.yaml) take base.yaml's
    values, which for such keys are the behaviour the run had (e.g. prior.label_dropout 0).
    """
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"'{run_dir}' is not a foley run folder (no config.yaml); give the --out of a `foley run`")
    document = _base_document()
    _deep_merge(document, _read_layered(path, seen=()))
    for override in overrides:
        _apply_override(document, override)
    return config_from_dict(document)


def section_from_dict(cls: type, data: Mapping[str, Any], path: str) -> Any:
    """One validated config section (e.g. AutoencoderConfig) from plain data, as stored in checkpoints."""
    return _build(cls, data, path)


def with_base_defaults(section: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """A top-level section as stored (e.g. in a checkpoint made before a key existed), with every
    key it lacks taken from base.yaml, whose values keep the behaviour from before the key."""
    merged = _base_document()[section]
    _deep_merge(merged, data)
    return merged


def _base_document() -> dict[str, Any]:
    return _read_layered(resolve_config_path("base"), seen=())


def resolve_config_path(source: str | Path) -> Path:
    path = Path(source)
    if path.is_file():
        return path
    builtin = _builtin_dir() / f"{source}.yaml"
    if path.suffix == "" and builtin.is_file():
        return builtin
    names = ", ".join(sorted(builtin_config_names()))
    raise ConfigError(f"config '{source}' is neither a YAML file nor a built-in config ({names})")


def builtin_config_names() -> list[str]:
    return [p.stem for p in _builtin_dir().glob("*.yaml") if p.stem != "base"]


def _builtin_dir() -> Path:
    return Path(str(importlib.resources.files("foley.configs")))


def _read_layered(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"config '{path}' includes itself (through {' -> '.join(map(str, seen))})")
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"config '{path}' is not valid YAML: {str(err).splitlines()[0]}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"config '{path}' cannot be read: {err}") from None
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ConfigError(f"config '{path}' must be a YAML mapping of keys, not {type(document).__name__}")
    includes = document.pop("include", [])
    merged: dict[str, Any] = {}
    for include in [includes] if isinstance(includes, str) else includes:
        if not isinstance(include, str):
            raise ConfigError(f"config '{path}': 'include' takes file names, got {include!r}")
        target = path.parent / include
        if not target.is_file():
            target = resolve_config_path(Path(include).stem)
        _deep_merge(merged, _read_layered(target, seen + (path,)))
    _deep_merge(merged, document)
    return merged


def _deep_merge(base: dict[str, Any], update: Mapping[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
            base[key] = value


def _apply_override(document: dict[str, Any], override: str) -> None:
    key, sep, text = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {override!r} must look like key.path=value (e.g. prior.channel=128)")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        raise ConfigError(f"override {override!r}: the value is not valid YAML") from None
    parts = key.strip().split(".")
    node = document
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {override!r}: {'.'.join(parts[:depth + 1])!r} is not a section")
        node = child
    node[parts[-1]] = value


def _build(cls: type, data: Any, path: str) -> Any:
    label = path or "the top level"
    if not isinstance(data, Mapping):
        raise ConfigError(f"config key '{label}' must be a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in fields:
            near = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"; did you mean '{_join(path, near[0])}'?" if near else f"; valid keys: {', '.join(fields)}"
            raise ConfigError(f"unknown config key {_join(path, str(key))!r}{hint}")
    values = {}
    for name in fields:
        if name not in data:
            raise ConfigError(
                f"config key '{_join(path, name)}' is missing; add it or include a built-in config (e.g. base.yaml)"
            )
        values[name] = _convert(hints[name], data[name], _join(path, name))
    obj = cls(**values)
    obj.check(path)
    return obj


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _convert(hint: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, path)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value, path)
    if origin is dict:
        if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
            raise ConfigError(f"config key '{path}' must be a mapping of names to values, got {value!r}")
        return {key: _convert(args[1], item, f"{path}.{key}") for key, item in value.items()}
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{path}' must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{path}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"config key '{path}' must have {len(args)} entries, got {list(value)!r}")
        return tuple(_convert(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin is typing.Literal:  # exact values: true must not match 1, nor "auto" "Auto"
        if not any(type(value) is type(choice) and value == choice for choice in args):
            shown = ", ".join(yaml.safe_dump(choice).split("\n")[0] for choice in args)
            raise ConfigError(f"config key '{path}' must be one of {shown}, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key '{path}' must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key '{path}' must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, str):  # YAML reads 3e-4 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"config key '{path}' must be a finite number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key '{path}' must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config type {hint!r} at {path}")


def dump_config(config: Config) -> str:
    return yaml.safe_dump(to_plain(config), sort_keys=False)
