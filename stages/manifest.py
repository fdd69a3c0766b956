"""Stage manifests: what a stage ran with, what it read and wrote, and whether it finished.

A stage is up to date when its manifest says complete, its config sections and inputs hash the
same as now, and its outputs are still there with the sizes recorded.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from foley.util.atomic import write_text_atomic

MANIFEST = "manifest.json"
SKIPPED_FILES = {MANIFEST, "checkpoint.pt", "checkpoint.pt.prev"}


def read_manifest(stage_dir: Path) -> dict[str, Any] | None:
    path = stage_dir / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, OSError):
        return None


def write_manifest(stage_dir: Path, manifest: dict[str, Any]) -> None:
    write_text_atomic(stage_dir / MANIFEST, json.dumps(manifest, indent=2, default=str))


def output_files(stage_dir: Path) -> dict[str, int]:
    """Every artifact of a stage (relative path -> size), temporary and resume files excluded."""
    files = {}
    for path in sorted(stage_dir.rglob("*")):
        if path.is_file() and path.name not in SKIPPED_FILES and not path.name.startswith("."):
            files[str(path.relative_to(stage_dir))] = path.stat().st_size
    return files


def outputs_hash(stage_dir: Path, files: dict[str, int]) -> str:
    digest = hashlib.sha256()
    for name in files:
        digest.update(name.encode() + b"\0")
        with open(stage_dir / name, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def outputs_intact(stage_dir: Path, manifest: dict[str, Any]) -> bool:
    recorded = manifest.get("outputs", {})
    return all((stage_dir / name).is_file() and (stage_dir / name).stat().st_size == size for name, size in recorded.items())


def update_fingerprint(digest: Any, path: Path) -> None:
    """Feed digest every file under path (or path itself): relative name, size and mtime."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path] if path.is_file() else []
    for file in files:
        stat = file.stat()
        name = file.relative_to(path) if path.is_dir() else file.name
        digest.update(f"{name}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        foley_version = version("foley")
    except PackageNotFoundError:
        foley_version = "unknown"
    return {
        "foley": foley_version,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
    }


def stage_details(stage_dir: Path) -> dict[str, Any]:
    """The details the stage in `stage_dir` recorded when it finished (e.g. extract_codes' codebook size)."""
    manifest = read_manifest(stage_dir) or {}
    return manifest.get("details", {})
