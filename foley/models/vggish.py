"""VGGish (Hershey et al., ICASSP 2017) in PyTorch, in the torchvggish state-dict layout.

The network maps a 96 x 64 log-mel example to the 128-d output of its last fully connected
layer, before any ReLU and without the PCA / quantisation post-processing: the embedding that
FAD uses. Parameter names and shapes are those of torchvggish's `vggish-10086976.pth`:
    features.{0,3,6,8,11,13}.{weight,bias}   3x3 convolutions 64, 128, 256, 256, 512, 512 channels
    embeddings.{0,2,4}.{weight,bias}         linear 12288 -> 4096 -> 4096 -> 128
The TensorFlow original flattens channels-last, so the convolution output is flattened as
(time, frequency, channel).

Nothing is downloaded: load_vggish reads a file the user gives.
"""

from __future__ import annotations

import hashlib
import pickle
import zipfile
from pathlib import Path

import torch
import torch.nn as nn

from foley.models import vggish_input
from foley.registry import EMBEDDERS
from foley.util.errors import CheckpointError, FoleyError

CONV_CHANNELS = ((64,), (128,), (256, 256), (512, 512))  # convolutions per block, each block then max-pooled
HIDDEN = 4096
EMBEDDING_SIZE = 128
IGNORED_PREFIXES = ("pproc.",)  # torchvggish's PCA post-processor, which FAD does not use
WEIGHTS_FILE = EMBEDDERS.entry("vggish").weights.file  # torchvggish's release, named in the registry
RANDOM_WEIGHTS_ID = "random-weights"


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


def check_state_dict(state: dict[str, torch.Tensor], source: str) -> None:
    """Raise CheckpointError listing every missing key, unexpected key and shape mismatch."""
    expected = {name: tuple(t.shape) for name, t in _unallocated().state_dict().items()}
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


def load_vggish(path: str | Path, device: torch.device | str = "cpu") -> VGGish:
    """The network with the weights at path (a torchvggish state dict), in eval mode on device."""
    path = EMBEDDERS.entry("vggish").weights.check("vggish", path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"VGGish weights '{path}' are corrupt or not a torch file ({first})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"'{path}' does not hold a state dict of tensors (expected torchvggish's {WEIGHTS_FILE})")
    check_state_dict(state, str(path))
    model = _unallocated()
    weights = {k: v.to(torch.float32) for k, v in state.items() if not k.startswith(IGNORED_PREFIXES)}
    model.load_state_dict(weights, strict=True, assign=True)
    return model.eval().requires_grad_(False).to(device)


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class VGGishEmbedder:
    """The Embedder (see foley.evaluate.embedding) over VGGish: each window gives its one 96-frame example.

    A window must hold exactly one example: 15,600 to 30,959 samples (the dcase2023 protocol's
    16,000-sample windows use their first 15,600). Runs on the device of the windows it is given.
    """

    sample_rate = vggish_input.SAMPLE_RATE
    dim = EMBEDDING_SIZE
    window = vggish_input.EXAMPLE_SAMPLES  # one 0.96 s example
    hop = vggish_input.EXAMPLE_HOP_SAMPLES

    def __init__(self, model: VGGish, weights_id: str) -> None:
        self.model = model
        self.name = f"vggish-{weights_id}"

    @classmethod
    def load(cls, weights: str | Path, device: torch.device | str = "cpu") -> VGGishEmbedder:
        """Load the weights and name the embedder by the first 12 hex digits of their SHA-256."""
        model = load_vggish(weights, device)
        return cls(model, file_digest(Path(weights))[:12])

    @classmethod
    def random(cls, device: torch.device | str = "cpu", seed: int = 0) -> VGGishEmbedder:
        """Randomly initialised weights: the right speed, meaningless embeddings (benchmarks only)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = VGGish().eval().requires_grad_(False).to(device)
        return cls(model, RANDOM_WEIGHTS_ID)

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
