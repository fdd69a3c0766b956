"""PANNs Wavegram-Logmel-CNN14 (Kong et al. 2020) in PyTorch, in the layout of the official checkpoint.

The state dict is that of `Wavegram_Logmel_Cnn14` in qiuqiangkong/audioset_tagging_cnn
(pytorch/models.py), STFT kernels and mel matrix included, so `Wavegram_Logmel_Cnn14_mAP=0.439.pth`
({'model': state_dict, ...}) loads strictly. Inference only: dropout, SpecAugment and mixup act in
training alone and are left out. The forward pass, for a waveform (B, L) at 32 kHz:
- Wavegram: Conv1d(1, 64, 11, stride 5, pad 5) + BN + ReLU; three 1-D blocks (conv 3, conv 3 with
  dilation 2, BN + ReLU after each, max-pool 4); the 128 channels regrouped as 4 maps of 32 "bins"
  (channel g * 32 + f); a 2-D block (4 -> 64 channels, average-pool (2, 1)).
- Log-mel: 1024-point STFT every 320 samples (centered, reflect-padded), 64 Slaney mel bands from 50 to
  14,000 Hz in dB, BatchNorm per mel band, a 2-D block (1 -> 64 channels, average-pool (2, 2)).
- When the two branches differ in length (the official code then fails in torch.cat, whenever
  L mod 640 is in [320, 635]) both are cropped to the shorter, as the DCASE 2024 fadtk fork does.
- Concatenated (128 channels); 2-D blocks to 128, 256, 512, 1024 channels (average-pool (2, 2)) and to
  2048 (no pooling); mean over frequency; max plus mean over time; fc1 + ReLU: the 2048-d `embedding`.
  `clipwise` = sigmoid(fc_audioset(embedding)), the 527 AudioSet class probabilities.
Nothing is downloaded: PannsEmbedder.load_network (foley.evaluate.pretrained) reads a file the user gives.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from foley.evaluate.pretrained import PretrainedEmbedder
from foley.models.panns_frontend import LogmelFilterBank, Spectrogram
from foley.registry import EMBEDDERS
from foley.util.errors import AudioError, CheckpointError

SAMPLE_RATE = 32000
N_FFT = 1024
HOP = 320
MEL_BINS = 64
FMIN, FMAX = 50.0, 14000.0
CLASSES = 527
EMBEDDING_SIZE = 2048
WAVEGRAM_GROUPS = 4  # the Wavegram's 128 channels become 4 maps of 32 bins
CNN_CHANNELS = (128, 256, 512, 1024, 2048)  # conv_block2 ... conv_block6
WEIGHTS_FILE = EMBEDDERS.entry("panns-wglm").weights.file  # the official release, named in the registry


class ConvBlock(nn.Module):
    """Two 3x3 convolutions (no bias), each followed by BatchNorm and ReLU, then average pooling."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor, pool: tuple[int, int]) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.avg_pool2d(x, pool)


class ConvPreWavBlock(nn.Module):
    """The Wavegram's 1-D block: conv 3, conv 3 with dilation 2 (each + BatchNorm + ReLU), max-pool."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(in_channels, out_channels, 3, padding=1, bias=False)
        self.conv2 = nn.Conv1d(out_channels, out_channels, 3, padding=2, dilation=2, bias=False)
        self.bn1 = nn.BatchNorm1d(out_channels)
        self.bn2 = nn.BatchNorm1d(out_channels)

    def forward(self, x: torch.Tensor, pool: int) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.max_pool1d(x, pool)


@dataclass(frozen=True)
class PannsOutput:
    embedding: torch.Tensor  # (B, 2048)
    clipwise: torch.Tensor  # (B, 527) AudioSet class probabilities


class WavegramLogmelCnn14(nn.Module):
    """Waveforms (B, L) at 32 kHz -> PannsOutput. Parameter names are the official model's."""

    def __init__(self) -> None:
        super().__init__()
        self.pre_conv0 = nn.Conv1d(1, 64, 11, stride=5, padding=5, bias=False)
        self.pre_bn0 = nn.BatchNorm1d(64)
        self.pre_block1 = ConvPreWavBlock(64, 64)
        self.pre_block2 = ConvPreWavBlock(64, 128)
        self.pre_block3 = ConvPreWavBlock(128, 128)
        self.pre_block4 = ConvBlock(WAVEGRAM_GROUPS, 64)
        self.spectrogram_extractor = Spectrogram(N_FFT, HOP)
        self.logmel_extractor = LogmelFilterBank(SAMPLE_RATE, N_FFT, MEL_BINS, FMIN, FMAX)
        self.bn0 = nn.BatchNorm2d(MEL_BINS)
        self.conv_block1 = ConvBlock(1, 64)
        widths = (128,) + CNN_CHANNELS
        for index, (width_in, width_out) in enumerate(zip(widths, CNN_CHANNELS), start=2):
            self.add_module(f"conv_block{index}", ConvBlock(width_in, width_out))
        self.fc1 = nn.Linear(EMBEDDING_SIZE, EMBEDDING_SIZE)
        self.fc_audioset = nn.Linear(EMBEDDING_SIZE, CLASSES)

    def wavegram(self, waveform: torch.Tensor) -> torch.Tensor:
        """(B, L) -> (B, 64, frames, 32)."""
        a = F.relu(self.pre_bn0(self.pre_conv0(waveform[:, None])))
        for block in (self.pre_block1, self.pre_block2, self.pre_block3):
            a = block(a, 4)
        a = a.reshape(a.shape[0], WAVEGRAM_GROUPS, -1, a.shape[-1]).transpose(2, 3)
        return self.pre_block4(a, (2, 1))

    def log_mel(self, waveform: torch.Tensor) -> torch.Tensor:
        """(B, L) -> (B, 64, frames, 32)."""
        x = self.logmel_extractor(self.spectrogram_extractor(waveform))  # (B, 1, frames, mel)
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)
        return self.conv_block1(x, (2, 2))

    def forward(self, waveform: torch.Tensor) -> PannsOutput:
        wave, mel = self.wavegram(waveform), self.log_mel(waveform)
        frames = min(wave.shape[2], mel.shape[2])
        x = torch.cat((mel[:, :, :frames], wave[:, :, :frames]), dim=1)
        for index in range(2, 6):
            x = getattr(self, f"conv_block{index}")(x, (2, 2))
        x = self.conv_block6(x, (1, 1)).mean(dim=3)
        x = x.amax(dim=2) + x.mean(dim=2)
        embedding = F.relu(self.fc1(x))
        return PannsOutput(embedding=embedding, clipwise=torch.sigmoid(self.fc_audioset(embedding)))


def output_frames(length: int) -> int:
    """Time frames left after the last pooling for a waveform of length samples (0: too short)."""
    wave = (length - 1) // 5 + 1
    for _ in range(3):
        wave //= 4
    frames = min(wave // 2, (length // HOP + 1) // 2)
    for _ in range(4):
        frames //= 2
    return frames


@functools.lru_cache(maxsize=1)
def min_samples() -> int:
    """The shortest waveform that keeps at least one time frame to the end (about 0.32 s)."""
    length = N_FFT // 2 + 1  # reflect padding needs more samples than it pads
    while output_frames(length) < 1:
        length += 1
    return length


# ---------------------------------------------------------------------------------------------
# Loading the official checkpoint


def _optional(name: str) -> bool:
    """BatchNorm's step counter: PyTorch fills it in when a state dict lacks it."""
    return name.endswith("num_batches_tracked")


def _found(state: dict[str, torch.Tensor]) -> str:
    """What the state dict looks like, for the message about a checkpoint of another model."""
    parts = [f"{len(state)} tensors"]
    parts.append("a Wavegram branch" if "pre_conv0.weight" in state else "no Wavegram branch (pre_conv0.*)")
    stft = state.get("spectrogram_extractor.stft.conv_real.weight")
    parts.append(f"a {stft.shape[-1]}-point STFT" if stft is not None and stft.dim() == 3 else "no PANNs STFT")
    classes = state.get("fc_audioset.weight")
    parts.append(f"{classes.shape[0]} output classes" if classes is not None else "no fc_audioset")
    return ", ".join(parts)


def _by_module(names: list[str]) -> str:
    """Key names grouped by their top-level module: 'pre_block1 (10 tensors), fc1.weight'."""
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(name.split(".")[0], []).append(name)
    return ", ".join(keys[0] if len(keys) == 1 else f"{module}.* ({len(keys)} tensors)" for module, keys in groups.items())


class PannsEmbedder(PretrainedEmbedder):
    """The Embedder (see foley.evaluate.embedding) over Wavegram-Logmel-CNN14: one 2048-d embedding per
    whole clip (window 0), as the DCASE 2024 fadtk fork embeds a clip.

    Windows must hold at least min_samples() samples. Runs on the device of the windows it is given.
    Its weights: the official checkpoint, {'model': state_dict, ...} (foley.evaluate.pretrained loads them).
    """

    registry_name = "panns-wglm"
    title = "PANNs"
    file_kind = "torch checkpoint"
    sample_rate = SAMPLE_RATE
    dim = EMBEDDING_SIZE
    window = 0  # the whole clip
    hop = 0

    @staticmethod
    def network() -> WavegramLogmelCnn14:
        return WavegramLogmelCnn14()

    @staticmethod
    def trusted_globals() -> list:
        """What numpy arrays and scalars in a checkpoint (the official one stores its training sampler's
        state) need to unpickle under weights_only, under numpy 1 and numpy 2 module names."""
        multiarray = np.core.multiarray if not hasattr(np, "_core") else np._core.multiarray
        allowed: list = [np.ndarray, np.dtype]
        for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            allowed += [(multiarray._reconstruct, f"{module}._reconstruct"), (multiarray.scalar, f"{module}.scalar")]
        allowed += [getattr(np.dtypes, name) for name in dir(np.dtypes) if name.endswith("DType")]
        return allowed

    @staticmethod
    def state_dict_in(content: Any, path: Path) -> dict[str, torch.Tensor]:
        """Its 'model' entry (or the file itself, if a bare state dict)."""
        state = content.get("model", content) if isinstance(content, dict) else None
        if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
            keys = ", ".join(map(str, content)) if isinstance(content, dict) else type(content).__name__
            raise CheckpointError(f"'{path}' holds no PANNs state dict: expected {{'model': state_dict}} as the official "
                                  f"{WEIGHTS_FILE} stores it, found {keys}")
        return state

    @staticmethod
    def check_state_dict(state: dict[str, torch.Tensor], expected: dict[str, tuple[int, ...]], source: str) -> None:
        """Raise CheckpointError saying what was found and listing every key and shape that differs."""
        found = {name: tuple(t.shape) for name, t in state.items()}
        shapes = [f"{name} has shape {found[name]}, expected {shape}"
                  for name, shape in expected.items() if name in found and found[name] != shape]
        missing = [name for name in expected if name not in found and not _optional(name)]
        unexpected = [name for name in found if name not in expected]
        problems = shapes[:6] + [f"and {len(shapes) - 6} more shapes differ"] * (len(shapes) > 6)
        problems += [f"missing {_by_module(missing)}"] * bool(missing)
        problems += [f"unexpected {_by_module(unexpected)}"] * bool(unexpected)
        if problems:
            raise CheckpointError(
                f"'{source}' is not the PANNs Wavegram-Logmel-CNN14 checkpoint ({WEIGHTS_FILE}): found {_found(state)}. "
                f"Differences: {'; '.join(problems)}"
            )

    @staticmethod
    def network_with(state: dict[str, torch.Tensor]) -> WavegramLogmelCnn14:
        model = WavegramLogmelCnn14()
        model.load_state_dict({k: v.to(torch.float32) if v.is_floating_point() else v for k, v in state.items()}, strict=True)
        return model

    def description(self) -> str:
        return f"{self.name} (PANNs Wavegram-Logmel-CNN14, 2048-d embedding of the whole clip; weights named by their SHA-256)"

    def embed(self, windows: torch.Tensor) -> torch.Tensor:
        if windows.dim() != 2 or windows.shape[-1] < min_samples():
            raise AudioError(f"PANNs embeds clips (N, S) of at least {min_samples()} samples "
                             f"({min_samples() / SAMPLE_RATE:.2f} s at 32 kHz); got shape {tuple(windows.shape)}")
        self.model.to(windows.device)
        with torch.inference_mode():
            return self.model(windows.to(torch.float32)).embedding
