"""foley's configuration: sections (foley.config.sections, foley.config.vocoder_eval), the whole
config (foley.config.schema) and how configs load (foley.config.loading)."""

from foley.config.loading import (
    DEFAULT_CONFIG,
    builtin_config_names,
    config_from_dict,
    dump_config,
    load_config,
    resolve_config_path,
    run_config,
    section_from_dict,
)
from foley.config.schema import (
    MAX_ATTENTION_BYTES,
    Config,
)
from foley.config.sections import (
    CODEBOOK_INITS,
    STACKS,
    AudioConfig,
    AutoencoderConfig,
    CodesConfig,
    DataConfig,
    MelConfig,
    PriorConfig,
    QuantizerConfig,
    SampleConfig,
    SyntheticConfig,
    TrainConfig,
    to_plain,
)
from foley.config.vocoder_eval import (
    CHANNEL_DIVISORS,
    DCASE_HIFIGAN_HINT,
    EvaluateConfig,
    GriffinLimConfig,
    HiFiGANTrainConfig,
    HiFiGANVocoderConfig,
    VocoderConfig,
)

__all__ = [
    "DEFAULT_CONFIG",
    "builtin_config_names",
    "config_from_dict",
    "dump_config",
    "load_config",
    "resolve_config_path",
    "run_config",
    "section_from_dict",
    "SyntheticConfig",
    "DataConfig",
    "AudioConfig",
    "MelConfig",
    "TrainConfig",
    "CODEBOOK_INITS",
    "QuantizerConfig",
    "AutoencoderConfig",
    "STACKS",
    "CodesConfig",
    "PriorConfig",
    "SampleConfig",
    "to_plain",
    "GriffinLimConfig",
    "CHANNEL_DIVISORS",
    "DCASE_HIFIGAN_HINT",
    "HiFiGANTrainConfig",
    "HiFiGANVocoderConfig",
    "VocoderConfig",
    "EvaluateConfig",
    "MAX_ATTENTION_BYTES",
    "Config",
]
