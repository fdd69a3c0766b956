"""VGGish (Hershey et al., ICASSP 2017) in PyTorch, in the torchvggish state-dict layout.

The network maps a 96 x 64 log-mel example to the 128-d output of its last fully connected
layer, before any ReLU and without the PCA / quantisation post-processing: the embedding that
FAD uses. Parameter names and shapes are those of torchvggish's `vggish-10086976.pth`:
    features.{0,3,6,8,11,13}.{weight,bias}   3x3 convolutions 64, 128, 256, 256, 512, 512 channels
    embeddings.{0,2,4}.{weight,bias}         linear 12288 -> 4096 -> 4096 -> 128
The TensorFlow original flattens channels-last, so the convolution output is flattened as
(time, frequency, channel).

Nothing is downloaded: VGGishEmbedder.load_network (foley.evaluate.pretrained) reads a file the user gives.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from foley.evaluate.pretrained import PretrainedEmbedder
from foley.models import vggish_input
from foley.registry import EMBEDDERS
from foley.util.errors import CheckpointError, FoleyError

CONV_CHANNELS = ((64,), (128,), (256, 256), (512, 512))  # convolutions per block, each block then max-pooled
HIDDEN = 4096
EMBEDDING_SIZE = 128
IGNORED_PREFIXES = ("pproc.",)  # torchvggish's PCA post-processor, which FAD does not use
WEIGHTS_FILE = EMBEDDERS.entry("vggish").weights.file  # torchvggish's release, named in the registry


def _conv_stack() -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = 1
    for block in CONV_CHANNELS:
        for width in block:
            layers += [nn.Conv2d(channels, width, kernel_size=3, padding=1), nn.ReLU()]
            channels = width
        layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers)


class VGGish(nn.Module):
    """Examples (N, 96, 64) log-mel -> embeddings (N, 128)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = _conv_stack()
        shrink = 2 ** len(CONV_CHANNELS)
        flat = CONV_CHANNELS[-1][-1] * (vggish_input.EXAMPLE_FRAMES // shrink) * (vggish_input.NUM_BANDS // shrink)
        self.embeddings = nn.Sequential(
            nn.Linear(flat, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, EMBEDDING_SIZE)
        )

    def forward(self, examples: torch.Tensor) -> torch.Tensor:
        maps = self.features(examples[:, None])
        return self.embeddings(maps.permute(0, 2, 3, 1).flatten(1))


def _unallocated() -> VGGish:
    with torch.device("meta"):
        return VGGish()


class VGGishEmbedder(PretrainedEmbedder):
    """The Embedder (see foley.evaluate.embedding) over VGGish: each window gives its one 96-frame example.

    A window must hold exactly one example: 15,600 to 30,959 samples (the dcase2023 protocol's
    16,000-sample windows use their first 15,600). Runs on the device of the windows it is given.
    Its weights: a torchvggish state dict (foley.evaluate.pretrained loads them).
    """

    registry_name = "vggish"
    title = "VGGish"
    file_kind = "torch file"
    sample_rate = vggish_input.SAMPLE_RATE
    dim = EMBEDDING_SIZE
    window = vggish_input.EXAMPLE_SAMPLES  # one 0.96 s example
    hop = vggish_input.EXAMPLE_HOP_SAMPLES

    @staticmethod
    def network() -> VGGish:
        return VGGish()

    @staticmethod
    def state_dict_in(content: Any, path: Path) -> dict[str, torch.Tensor]:
        if not isinstance(content, dict) or not all(isinstance(v, torch.Tensor) for v in content.values()):
            raise CheckpointError(f"'{path}' does not hold a state dict of tensors (expected torchvggish's {WEIGHTS_FILE})")
        return content

    @staticmethod
    def check_state_dict(state: dict[str, torch.Tensor], expected: dict[str, tuple[int, ...]], source: str) -> None:
        """Raise CheckpointError listing every missing key, unexpected key and shape mismatch."""
        found = {name: tuple(t.shape) for name, t in state.items() if not name.startswith(IGNORED_PREFIXES)}
        problems = [f"missing {name} {shape}" for name, shape in expected.items() if name not in found]
        problems += [f"unexpected {name} {shape}" for name, shape in found.items() if name not in expected]
        problems += [
            f"{name} has shape {found[name]}, expected {shape}"
            for name, shape in expected.items()
            if name in found and found[name] != shape
        ]
        if problems:
            raise CheckpointError(
                f"'{source}' is not a VGGish state dict in the torchvggish layout ({WEIGHTS_FILE}): " + "; ".join(problems)
            )

    @staticmethod
    def network_with(state: dict[str, torch.Tensor]) -> VGGish:
        model = _unallocated()
        weights = {k: v.to(torch.float32) for k, v in state.items() if not k.startswith(IGNORED_PREFIXES)}
        model.load_state_dict(weights, strict=True, assign=True)
        return model

    def description(self) -> str:
        return f"{self.name} (VGGish, 128-d pre-ReLU embedding without PCA; weights named by their SHA-256)"

    def embed(self, windows: torch.Tensor) -> torch.Tensor:
        shortest = vggish_input.EXAMPLE_SAMPLES
        longest = shortest + vggish_input.EXAMPLE_HOP_SAMPLES - 1
        if windows.dim() != 2 or not shortest <= windows.shape[-1] <= longest:
            raise FoleyError(
                f"VGGish embeds windows (N, S) with S from {shortest} to {longest} samples, one 96-frame "
                f"example each; got shape {tuple(windows.shape)}"
            )
        examples = vggish_input.waveform_examples(windows)[:, 0].to(torch.float32)
        self.model.to(windows.device)
        with torch.inference_mode():
            return self.model(examples)
