"""The whole configuration: one section per component, plus the checks that span sections.

Sections live in foley.config.sections (model pipeline) and foley.config.vocoder_eval (vocoder and
evaluation); `Config.check` adds what needs several of them (e.g. whether the prior map's attention
can fit in memory).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

from foley.config.sections import (
    AudioConfig,
    AutoencoderConfig,
    CodesConfig,
    DataConfig,
    MelConfig,
    PriorConfig,
    SampleConfig,
    TrainSpeedConfig,
    require,
    to_plain,
)
from foley.config.vocoder_eval import EvaluateConfig, VocoderConfig
from foley.util import shapes

# Attention holds a (positions x positions) score matrix per head and clip; refuse maps whose
# matrices for one training batch could not fit in any accelerator's memory.
MAX_ATTENTION_BYTES = 64 * 2**30

# bf16 autocast: false, true (warns where declined) or auto (where the device computes bf16 natively, silently)
AmpSetting = Literal[False, True, "auto"]


@dataclass(frozen=True)
class Config:
    name: str
    seed: int
    device: str
    amp: AmpSetting  # false | true | auto (see foley.util.device.amp_enabled)
    train_speed: TrainSpeedConfig
    data: DataConfig
    audio: AudioConfig
    mel: MelConfig
    autoencoder: AutoencoderConfig
    codes: CodesConfig
    prior: PriorConfig
    sample: SampleConfig
    vocoder: VocoderConfig
    evaluate: EvaluateConfig

    def check(self, path: str) -> None:
        require(
            self.mel.fmax <= self.audio.sample_rate / 2,
            "mel.fmax",
            f"must not exceed the Nyquist frequency {self.audio.sample_rate / 2:g} Hz",
        )
        require(
            self.device == "auto" or self.device == "cpu" or self.device.startswith("cuda"),
            "device",
            "must be auto, cpu, cuda or cuda:N",
        )
        require(
            self.autoencoder.loss.mel_bands <= self.mel.n_mels,
            "autoencoder.loss.mel_bands",
            f"must not exceed mel.n_mels ({self.mel.n_mels}): each band needs at least one mel bin",
        )
        require(
            self.sample.levels <= self.autoencoder.quantizer.levels,
            "sample.levels",
            f"must not exceed autoencoder.quantizer.levels ({self.autoencoder.quantizer.levels}); 0 = all",
        )
        frames = shapes.mel_frames(self.audio.clip_samples, self.mel.n_fft, self.mel.hop_length)
        require(frames >= 1, "audio.clip_samples", "must be at least mel.n_fft - mel.hop_length")
        height, width = self.map_shape
        if self.prior.attention:
            positions = height * width
            need = 4 * positions**2 * self.prior.n_head * self.prior.train.batch_size
            require(
                need <= MAX_ATTENTION_BYTES,
                "autoencoder.strides",
                f"give a {height} x {width} prior map whose attention needs {need / 2**30:.0f} GiB "
                "per training batch; use larger strides, fewer levels or prior.attention: false",
            )

    @property
    def latent_shape(self) -> tuple[int, int]:
        """(height, width) of one quantiser level for the configured mel."""
        frames = shapes.mel_frames(self.audio.clip_samples, self.mel.n_fft, self.mel.hop_length)
        return shapes.latent_shape((self.mel.n_mels, frames), self.autoencoder.strides)

    @property
    def map_shape(self) -> tuple[int, int]:
        """(height, width) of the stacked code map the prior models."""
        return shapes.stacked_shape(self.latent_shape, self.autoencoder.quantizer.levels, self.codes.stack)

    @property
    def class_count(self) -> int:
        return len(self.data.class_names)

    def section_hash(self, *sections: str) -> str:
        """Content hash of the named sections (a stage's parameters); dotted names name sub-sections."""
        payload = {name: to_plain(self.section(name)) for name in sections}
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def section(self, dotted: str) -> Any:
        """A section or sub-section by its dotted key, e.g. "vocoder.hifigan"."""
        node: Any = self
        for part in dotted.split("."):
            node = getattr(node, part)
        return node

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)
