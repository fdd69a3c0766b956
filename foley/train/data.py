"""Training data where the training step reads it: on the GPU when it fits, else in pinned memory.

A GPU trains fastest from data already on it: a batch is then one gather per tensor on the device
(``DeviceTensors``), with no host work and no copy per step. Sets too large for that stay on the
host and reach the GPU through pinned (page-locked) batches, which copy asynchronously.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import Dataset, TensorDataset

RESIDENT_SHARE = 0.1  # a training set moves to the GPU when it takes at most this share of its free memory


class DeviceTensors(Dataset):
    """Equal-length tensors on one device; a list of indices gives the whole batch at once
    (``__getitems__``, which torch's DataLoader calls with each batch's indices)."""

    def __init__(self, *tensors: torch.Tensor) -> None:
        self.tensors = tensors

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        return tuple(t[index] for t in self.tensors)

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, ...]:
        index = torch.as_tensor(indices, device=self.tensors[0].device)
        return tuple(t[index] for t in self.tensors)


def whole_batch(batch: Any) -> Any:
    """The DataLoader's collate for ``DeviceTensors``: its batches come whole."""
    return batch


@dataclass(frozen=True)
class TrainingData:
    dataset: Dataset
    collate: Any  # the DataLoader's collate_fn (None: torch's default)
    pin_memory: bool
    resident: bool  # on the training device


def training_data(tensors: tuple[torch.Tensor, ...], device: torch.device, num_workers: int,
                  allow_resident: bool = True) -> TrainingData:
    """``tensors`` as training data for ``device``: on the device when ``fits_on_device`` (and
    allowed), else on the host, in pinned batches when training on CUDA."""
    if allow_resident and fits_on_device(tensors, device, num_workers):
        return TrainingData(DeviceTensors(*(t.to(device) for t in tensors)), whole_batch, pin_memory=False, resident=True)
    return TrainingData(TensorDataset(*tensors), None, pin_memory=device.type == "cuda", resident=False)


def fits_on_device(tensors: tuple[torch.Tensor, ...], device: torch.device, num_workers: int) -> bool:
    """A CUDA device, no loader workers (they cannot share its memory) and at most
    ``RESIDENT_SHARE`` of its free memory."""
    if device.type != "cuda" or num_workers:
        return False
    size = sum(t.numel() * t.element_size() for t in tensors)
    return size <= RESIDENT_SHARE * torch.cuda.mem_get_info(device)[0]
