"""Choosing the device once, the mixed-precision switch, and waiting for a device to finish."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

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


def amp_enabled(device: torch.device, requested: bool) -> bool:
    """Whether mixed precision (bf16 autocast) is used: when requested (config `amp`), on CUDA only."""
    return requested and device.type == "cuda"


def autocast(device: torch.device, requested: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast where amp_enabled says so; a no-op elsewhere."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp_enabled(device, requested))


@contextlib.contextmanager
def tf32(device: torch.device, enabled: bool) -> Iterator[None]:
    """TF32 matrix products and cuDNN convolutions on CUDA while inside (when ``enabled``), then
    torch's settings as they were; no effect elsewhere."""
    if device.type != "cuda":
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (timings); nothing to wait for on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
