"""The one place that turns config sections into models, and checkpoints back into models."""

from __future__ import annotations

from pathlib import Path

from foley.config import AutoencoderConfig, PriorConfig, section_from_dict, to_plain, with_base_defaults
from foley.models.autoencoder import Autoencoder
from foley.models.pixelsnail import PixelSNAIL
from foley.registry import QUANTIZERS
from foley.util.checkpoint import load_checkpoint
from foley.util.errors import CheckpointError


def build_autoencoder(section: AutoencoderConfig, input_shape: tuple[int, int]) -> Autoencoder:
    """The autoencoder with the quantizer that `autoencoder.quantizer.type` names in the registry."""
    quantizer = QUANTIZERS.get(section.quantizer.type).from_config(section.embed_dim, section.quantizer)
    return Autoencoder(
        input_shape, section.strides, quantizer, section.channel, section.n_res_block, section.n_res_channel,
        standardize=section.standardize,
    )


def build_prior(section: PriorConfig, map_shape: tuple[int, int], vocab_size: int, n_classes: int) -> PixelSNAIL:
    return PixelSNAIL(
        map_shape=tuple(map_shape),
        vocab_size=vocab_size,
        n_classes=n_classes,
        channel=section.channel,
        kernel_size=section.kernel_size,
        n_block=section.n_block,
        n_res_block=section.n_res_block,
        res_channel=section.res_channel,
        attention=section.attention,
        n_head=section.n_head,
        dropout=section.dropout,
        label_hidden=section.label_hidden,
        label_dropout=section.label_dropout,
        label_channels=section.label_channels,
    )


def autoencoder_spec(model: Autoencoder, section: AutoencoderConfig) -> dict:
    """What a checkpoint needs to rebuild the autoencoder (its `model_config`)."""
    return {"autoencoder": to_plain(section), "input_shape": list(model.input_shape)}


def prior_spec(model: PixelSNAIL, section: PriorConfig) -> dict:
    """What a checkpoint needs to rebuild the prior (its `model_config`)."""
    return {
        "prior": to_plain(section),
        "map_shape": list(model.map_shape),
        "vocab_size": model.vocab_size,
        "n_classes": model.n_classes,
    }


def load_autoencoder(path: str | Path) -> tuple[Autoencoder, AutoencoderConfig]:
    payload = load_checkpoint(path, kind="autoencoder")
    spec = payload["model_config"]
    section = section_from_dict(AutoencoderConfig, with_base_defaults("autoencoder", spec["autoencoder"]), "autoencoder")
    model = build_autoencoder(section, tuple(spec["input_shape"]))
    _load_state(model, payload, path)
    return model, section


def load_prior(path: str | Path) -> tuple[PixelSNAIL, PriorConfig]:
    payload = load_checkpoint(path, kind="prior")
    spec = payload["model_config"]
    section = section_from_dict(PriorConfig, with_base_defaults("prior", spec["prior"]), "prior")
    model = build_prior(section, tuple(spec["map_shape"]), spec["vocab_size"], spec["n_classes"])
    _load_state(model, payload, path)
    return model, section


def _load_state(model, payload: dict, path) -> None:
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as err:
        raise CheckpointError(f"checkpoint '{path}' does not fit its own model config: {str(err).splitlines()[0]}") from None
    model.eval()
