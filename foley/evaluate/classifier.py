"""Class accuracy: a small log-mel CNN trained on a run's real training clips, then applied to others.

It answers "does a generated dog bark sound like a dog bark" directly: the classifier learns the
classes from real clips only (weight-free: trained from scratch, offline), and its accuracy on
held-out real clips is the ceiling that generated clips are measured against.

The network: log-mel (n_mels, frames) -> standardised with the training set's mean and standard
deviation -> average-pooled by ``pool`` (mel bins, frames) -> three 3x3 convolutions (ReLU,
2x2 max-pool between) -> mean and max over the map -> linear -> class logits. Training: Adam,
cross-entropy, a random circular time shift and a random gain (+-6 dB, an offset in the log
domain) per clip and epoch, all drawn from the classifier's own seed, so the same clips and
settings give the same classifier on one machine (torch's global RNG is left untouched).
Trained classifiers are cached by the content of their training set and settings.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from foley.audio.clips import read_clip
from foley.audio.mel import log_mel
from foley.config import MelConfig
from foley.train.batches import batches_per_epoch
from foley.util.atomic import atomic_path

CLASSIFIER_VERSION = "mel-cnn-v1"  # bump when the network or its training changes: old caches are not reused
GAIN_DB = 6.0


@dataclass(frozen=True)
class ClassifierSettings:
    epochs: int = 10
    batch_size: int = 32
    lr: float = 3e-3
    seed: int = 0
    widths: tuple[int, int, int] = (8, 16, 16)
    pool: tuple[int, int] = (4, 4)  # mel bins x frames averaged before the first convolution


def training_epochs(clips: int, batch_size: int, epochs: int, min_steps: int) -> int:
    """Epochs to train on `clips` clips: at least `epochs`, and enough whole epochs for at least
    `min_steps` optimizer steps, so a small set gets more epochs (0 epochs: no classifier)."""
    if epochs == 0 or clips == 0:
        return 0
    return max(epochs, math.ceil(min_steps / batches_per_epoch(clips, batch_size)))


class MelClassifier(nn.Module):
    """(B, n_mels, frames) log-mels -> (B, n_classes) logits."""

    def __init__(self, n_classes: int, widths: tuple[int, ...], pool: tuple[int, int],
                 mean: float = 0.0, std: float = 1.0) -> None:
        super().__init__()
        self.pool = tuple(pool)
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))
        channels = (1, *widths)
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1) for a, b in zip(channels, channels[1:]))
        self.head = nn.Linear(2 * widths[-1], n_classes)

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool2d(((mels - self.mean) / self.std).unsqueeze(1), self.pool, ceil_mode=True)
        for i, conv in enumerate(self.convs):
            x = F.relu(conv(x))
            if i < len(self.convs) - 1:
                x = F.max_pool2d(x, 2, ceil_mode=True)
        return self.head(torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1))


def _augment(mels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each clip circularly shifted in time by a random number of frames, plus a random gain."""
    batch, _, frames = mels.shape
    shifts = torch.randint(0, frames, (batch,), generator=generator)
    index = (torch.arange(frames).unsqueeze(0) - shifts.unsqueeze(1)) % frames
    shifted = mels.gather(2, index.unsqueeze(1).expand_as(mels))
    gain = (torch.rand(batch, generator=generator) * 2 - 1) * GAIN_DB * np.log(10) / 20
    return shifted + gain.view(batch, 1, 1)


def train_classifier(mels: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor, n_classes: int,
                     settings: ClassifierSettings = ClassifierSettings()) -> MelClassifier:
    """A classifier trained on (N, n_mels, frames) log-mels with labels (N,) in [0, n_classes)."""
    mels = torch.as_tensor(np.asarray(mels, dtype=np.float32))
    labels = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    if mels.dim() != 3 or labels.shape != mels.shape[:1] or len(labels) < 2:
        raise ValueError(f"need mels (N >= 2, n_mels, frames) and one label each, got {tuple(mels.shape)} "
                         f"and {tuple(labels.shape)}")
    if labels.min() < 0 or labels.max() >= n_classes:
        raise ValueError(f"labels must lie in [0, {n_classes}), got {int(labels.min())}..{int(labels.max())}")
    generator = torch.Generator().manual_seed(settings.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        model = MelClassifier(n_classes, settings.widths, settings.pool, float(mels.mean()), float(mels.std()) or 1.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    model.train()
    for _ in range(settings.epochs):
        order = torch.randperm(len(labels), generator=generator)
        for first in range(0, len(order), settings.batch_size):
            batch = order[first : first + settings.batch_size]
            loss = F.cross_entropy(model(_augment(mels[batch], generator)), labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return model.eval()


@torch.no_grad()
def predict(model: MelClassifier, mels: np.ndarray | torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """The most likely class of each of (N, n_mels, frames) log-mels, (N,) int64."""
    mels = torch.as_tensor(np.asarray(mels, dtype=np.float32))
    model.eval()
    chunks = [model(mels[i : i + batch_size]).argmax(dim=1) for i in range(0, len(mels), batch_size)]
    return torch.cat(chunks).numpy() if chunks else np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class ClassAccuracy:
    """A confusion matrix [true class, predicted class] of clip counts, and the accuracies it gives."""

    class_names: tuple[str, ...]
    confusion: np.ndarray

    @property
    def clips(self) -> np.ndarray:
        return self.confusion.sum(axis=1)

    @property
    def per_class(self) -> np.ndarray:
        """Share of each class's clips classified as that class (NaN for a class without clips)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.diag(self.confusion) / self.clips

    @property
    def mean(self) -> float:
        """The mean of the per-class accuracies over the classes that have clips (balanced accuracy)."""
        return float(np.nanmean(self.per_class))


def class_accuracy(true: np.ndarray, predicted: np.ndarray, class_names: tuple[str, ...]) -> ClassAccuracy:
    n = len(class_names)
    confusion = np.zeros((n, n), dtype=np.int64)
    np.add.at(confusion, (np.asarray(true, dtype=np.int64), np.asarray(predicted, dtype=np.int64)), 1)
    return ClassAccuracy(tuple(class_names), confusion)


def classifier_key(mels: np.ndarray, labels: np.ndarray, n_classes: int, settings: ClassifierSettings) -> str:
    """SHA-256 of the training set's content, the class count, the settings and the classifier version."""
    digest = hashlib.sha256()
    description = {"version": CLASSIFIER_VERSION, "n_classes": n_classes, "torch": torch.__version__,
                   **dataclasses.asdict(settings)}
    digest.update(json.dumps(description, sort_keys=True).encode())
    digest.update(np.ascontiguousarray(mels, dtype=np.float32).tobytes())
    digest.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    return digest.hexdigest()


def cached_classifier(cache_dir: str | Path, mels: np.ndarray, labels: np.ndarray, n_classes: int,
                      settings: ClassifierSettings = ClassifierSettings()) -> tuple[MelClassifier, str]:
    """The classifier of these clips and settings: loaded from cache_dir/classifiers/ or trained and saved.

    Also returns its key (a content id)."""
    key = classifier_key(mels, labels, n_classes, settings)
    path = Path(cache_dir) / "classifiers" / f"{key[:32]}.pt"
    model = MelClassifier(n_classes, settings.widths, settings.pool)
    if path.is_file():
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.eval(), key
    model = train_classifier(mels, labels, n_classes, settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(model.state_dict(), tmp)
    return model, key


def clip_mels(paths: list[Path], mel: MelConfig, sample_rate: int, num_samples: int, batch_size: int = 32) -> np.ndarray:
    """Log-mels (N, n_mels, frames) of sound files read with the clip policy, as prepare computes them."""
    chunks = []
    for first in range(0, len(paths), batch_size):
        audio = np.stack([read_clip(p, sample_rate, num_samples).audio for p in paths[first : first + batch_size]])
        chunks.append(log_mel(torch.from_numpy(audio), mel, sample_rate).numpy())
    return np.concatenate(chunks) if chunks else np.zeros((0, mel.n_mels, 0), dtype=np.float32)
