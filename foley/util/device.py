"""Choosing the device once, and the autocast switch."""

from __future__ import annotations

import contextlib

import torch

from foley.util.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda if available, else cpu; 'cuda[:N]' must exist."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"config key 'device' asks for {name} but no CUDA device is available; use auto or cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"config key 'device' asks for {name} but only {torch.cuda.device_count()} GPU(s) exist")
    return device


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA when enabled; a no-op elsewhere."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled and device.type == "cuda")
