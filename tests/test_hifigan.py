"""HiFi-GAN generator: official layout, golden forward against plain functional ops, checkpoint I/O."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from foley.models.hifigan import Generator, HiFiGANConfig, load_generator
from foley.models.normed_conv import WeightNormConv
from foley.util.errors import CheckpointError, ConfigError
from foley.vocoders.hifigan import HiFiGANVocoder, benchmark_vocoder

# The DCASE 2023 Task 7 baseline's checkpoint/hifigan/hifigan_config.json, as published.
DCASE_CONFIG = {
    "resblock": "1", "num_gpus": 0, "batch_size": 16, "learning_rate": 0.0002, "adam_b1": 0.8, "adam_b2": 0.99,
    "lr_decay": 0.999, "seed": 1234, "upsample_rates": [8, 8, 2, 2], "upsample_kernel_sizes": [16, 16, 4, 4],
    "upsample_initial_channel": 512, "resblock_kernel_sizes": [3, 7, 11],
    "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]], "segment_size": 8192, "num_mels": 80,
    "num_freq": 1025, "n_fft": 1024, "hop_size": 256, "win_size": 1024, "sampling_rate": 22050, "fmin": 0,
    "fmax": 8000, "fmax_for_loss": None, "num_workers": 15,
    "dist_config": {"dist_backend": "nccl", "dist_url": "tcp://localhost:54321", "world_size": 1},
}
TINY = {
    "1": dict(DCASE_CONFIG, upsample_rates=[4, 4], upsample_kernel_sizes=[8, 8], upsample_initial_channel=16,
              resblock_kernel_sizes=[3, 5], resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5]], num_mels=12,
              hop_size=16, n_fft=64, win_size=64, segment_size=256),
    "2": dict(DCASE_CONFIG, resblock="2", upsample_rates=[4, 2], upsample_kernel_sizes=[8, 4],
              upsample_initial_channel=16, resblock_kernel_sizes=[3, 5], resblock_dilation_sizes=[[1, 2], [2, 6]],
              num_mels=10, hop_size=8, n_fft=32, win_size=32, segment_size=256),
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def write_json(path, data):
    path.write_text(json.dumps(data))
    return path


def expected_shapes(cfg: dict) -> dict[str, tuple[int, ...]]:
    """The official generator's state-dict keys and shapes, in order, worked out from the config."""
    shapes = {}

    def conv(prefix, out_ch, in_ch, kernel):
        shapes.update({f"{prefix}.bias": (out_ch,), f"{prefix}.weight_g": (out_ch, 1, 1),
                       f"{prefix}.weight_v": (out_ch, in_ch, kernel)})

    width = cfg["upsample_initial_channel"]
    conv("conv_pre", width, cfg["num_mels"], 7)
    for i, k in enumerate(cfg["upsample_kernel_sizes"]):  # transposed: weight (in, out, k), norm over in
        c_in, c_out = width // 2**i, width // 2 ** (i + 1)
        shapes.update({f"ups.{i}.bias": (c_out,), f"ups.{i}.weight_g": (c_in, 1, 1),
                       f"ups.{i}.weight_v": (c_in, c_out, k)})
    n = 0
    for i in range(len(cfg["upsample_rates"])):
        ch = width // 2 ** (i + 1)
        for k, dilations in zip(cfg["resblock_kernel_sizes"], cfg["resblock_dilation_sizes"]):
            lists = ("convs1", "convs2") if cfg["resblock"] == "1" else ("convs",)
            for name in lists:
                for j in range(len(dilations)):
                    conv(f"resblocks.{n}.{name}.{j}", ch, ch, k)
            n += 1
    conv("conv_post", 1, width // 2 ** len(cfg["upsample_rates"]), 7)
    return shapes


def random_state(cfg: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in expected_shapes(cfg).items():
        if key.endswith("weight_g"):
            state[key] = 0.5 + torch.rand(shape, generator=gen)
        elif key.endswith("bias"):
            state[key] = 0.1 * torch.randn(shape, generator=gen)
        else:
            state[key] = torch.randn(shape, generator=gen)
    return state


def reference_forward(state: dict, cfg: dict, mel: torch.Tensor) -> torch.Tensor:
    """The official generator's forward written with plain functional ops on the raw tensors."""

    def w(prefix):
        v = state[f"{prefix}.weight_v"]
        return state[f"{prefix}.weight_g"] * v / torch.sqrt((v * v).sum(dim=(1, 2), keepdim=True))

    def conv(x, prefix, kernel, dilation=1):
        return F.conv1d(x, w(prefix), state[f"{prefix}.bias"], dilation=dilation, padding=(kernel - 1) * dilation // 2)

    x = conv(mel, "conv_pre", 7)
    kernels, per_level = cfg["resblock_kernel_sizes"], len(cfg["resblock_kernel_sizes"])
    for i, (u, k) in enumerate(zip(cfg["upsample_rates"], cfg["upsample_kernel_sizes"])):
        x = F.conv_transpose1d(
            F.leaky_relu(x, 0.1), w(f"ups.{i}"), state[f"ups.{i}.bias"], stride=u, padding=(k - u) // 2
        )
        total = torch.zeros_like(x)
        for j, (rk, dilations) in enumerate(zip(kernels, cfg["resblock_dilation_sizes"])):
            y, block = x, f"resblocks.{i * per_level + j}"
            for m, d in enumerate(dilations):
                if cfg["resblock"] == "1":
                    t = conv(F.leaky_relu(y, 0.1), f"{block}.convs1.{m}", rk, d)
                    y = y + conv(F.leaky_relu(t, 0.1), f"{block}.convs2.{m}", rk)
                else:
                    y = y + conv(F.leaky_relu(y, 0.1), f"{block}.convs.{m}", rk, d)
            total = total + y
        x = total / per_level
    return torch.tanh(conv(F.leaky_relu(x, 0.01), "conv_post", 7))


def new_style_names(state: dict) -> dict:
    names = {"weight_g": "parametrizations.weight.original0", "weight_v": "parametrizations.weight.original1"}
    return {k.rsplit(".", 1)[0] + "." + names[k.rsplit(".", 1)[1]] if k.endswith(("weight_g", "weight_v")) else k: v
            for k, v in state.items()}


@pytest.mark.parametrize("resblock", ["1", "2"])
def test_state_dict_keys_shapes_and_order_are_official(resblock):
    cfg = TINY[resblock]
    found = {k: tuple(v.shape) for k, v in Generator(HiFiGANConfig.from_dict(cfg)).state_dict().items()}
    assert list(found.items()) == list(expected_shapes(cfg).items())


@pytest.mark.parametrize("resblock", ["1", "2"])
@pytest.mark.parametrize("names", ["weight_g/weight_v", "parametrizations"])
def test_loaded_checkpoint_matches_functional_forward(tmp_path, resblock, names):
    cfg = TINY[resblock]
    state = random_state(cfg)
    saved = state if names == "weight_g/weight_v" else new_style_names(state)
    torch.save({"generator": saved}, tmp_path / "g_00000001")
    generator = load_generator(tmp_path / "g_00000001", HiFiGANConfig.from_dict(cfg))
    mel = torch.randn(2, cfg["num_mels"], 9, generator=torch.Generator().manual_seed(1))
    expected = reference_forward(state, cfg, mel)
    with torch.no_grad():
        ours = generator(mel)
    assert ours.shape == (2, 1, 9 * cfg["hop_size"])
    assert expected.abs().max() > 0.1  # a non-trivial signal, not saturated either
    assert expected.abs().max() < 0.999
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)
    vocoder = HiFiGANVocoder(generator)
    torch.testing.assert_close(vocoder(mel), expected[:, 0], atol=1e-5, rtol=0)


def test_torch_parametrization_uses_the_names_we_rename():
    conv = torch.nn.utils.parametrizations.weight_norm(nn.ConvTranspose1d(4, 3, 5, 2))
    assert set(conv.state_dict()) == {"bias", "parametrizations.weight.original0", "parametrizations.weight.original1"}
    ours = WeightNormConv(nn.ConvTranspose1d(4, 3, 5, 2))
    ours.load_state_dict({"bias": conv.bias, "weight_g": conv.parametrizations.weight.original0,
                          "weight_v": conv.parametrizations.weight.original1})
    assert ours.weight_g.shape == (4, 1, 1)  # dim 0 of a transposed weight: its in-channel axis
    x = torch.randn(2, 4, 7)
    torch.testing.assert_close(ours(x), conv(x))


def test_dcase_config_sizes_and_output_length(tmp_path):
    config = HiFiGANConfig.from_json(write_json(tmp_path / "config.json", DCASE_CONFIG))
    with torch.device("meta"):
        generator = Generator(config)
    count = sum(p.numel() for p in generator.parameters())
    assert count == sum(torch.Size(s).numel() for s in expected_shapes(DCASE_CONFIG).values())
    assert round(count / 1e6, 2) == 13.94
    assert generator(torch.empty(1, 80, 344, device="meta")).shape == (1, 1, 88_064)
    generator.remove_weight_norm()
    assert round(sum(p.numel() for p in generator.parameters()) / 1e6, 2) == 13.93
    assert all(k.endswith(("weight", "bias")) for k in generator.state_dict())


def test_dcase_config_runs_on_cpu_without_deprecation_warnings(tmp_path):
    config = HiFiGANConfig.from_json(write_json(tmp_path / "config.json", DCASE_CONFIG))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vocoder = HiFiGANVocoder(Generator(config))
        audio = vocoder(torch.randn(1, 80, 4) - 5.0)
    assert audio.shape == (1, 1024) and torch.isfinite(audio).all() and audio.abs().max() <= 1.0


def test_vocoder_is_batch_invariant_and_chunks():
    generator = Generator(HiFiGANConfig.from_dict(TINY["1"]))
    vocoder = HiFiGANVocoder(generator)
    mel = torch.randn(5, 12, 6)
    whole = vocoder(mel)
    assert whole.shape == (5, 6 * 16) and not whole.requires_grad
    torch.testing.assert_close(vocoder(mel, batch_size=2), whole, atol=1e-6, rtol=0)
    torch.testing.assert_close(vocoder(mel[3:4]), whole[3:4], atol=1e-6, rtol=0)
    with torch.no_grad():
        torch.testing.assert_close(generator(mel)[:, 0], whole, atol=1e-5, rtol=0)  # folding keeps the function
    assert any(isinstance(m, WeightNormConv) and not m.folded for m in generator.modules())  # caller's copy intact
    with pytest.raises(ValueError, match=r"\(batch, 12, frames\), found \(12, 6\)"):
        vocoder(mel[0])


def test_benchmark_rows():
    vocoder = HiFiGANVocoder(Generator(HiFiGANConfig.from_dict(TINY["2"])))
    rows = benchmark_vocoder(vocoder, batch_sizes=(1, 3), frames=8, device="cpu", repeats=1)
    assert [r["batch_size"] for r in rows] == [1, 3]
    assert all(r["device"] == "cpu" and r["clips_per_second"] > 0 and r["frames"] == 8 for r in rows)


# ---------------------------------------------------------------------------------------------
# Errors


def test_config_reads_official_json_ignoring_unknown_keys(tmp_path):
    config = HiFiGANConfig.from_json(write_json(tmp_path / "c.json", DCASE_CONFIG))
    assert config.num_mels == 80 and config.upsample_rates == (8, 8, 2, 2)
    assert config.mel_config().fmax == 8000 and config.loss_mel_config().fmax == 11025
    assert HiFiGANConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    "change, message",
    [
        ({"upsample_rates": None}, "lacks key.*upsample_rates"),
        ({"resblock": "3"}, r'resblock.*"1" or "2"'),
        ({"resblock": 1}, r'resblock.*"1" or "2"'),
        ({"upsample_rates": 256}, "wrong type"),
        ({"hop_size": 200}, "multiply to 256, must equal hop_size 200"),
        ({"resblock_dilation_sizes": [[1, 3], [1, 3], [1, 3]]}, 'needs 3 dilations per kernel for resblock "1"'),
    ],
)
def test_config_errors_name_the_key(tmp_path, change, message):
    data = {k: v for k, v in {**DCASE_CONFIG, **change}.items() if v is not None or k == "fmax_for_loss"}
    with pytest.raises(ConfigError, match=message):
        HiFiGANConfig.from_json(write_json(tmp_path / "c.json", data))


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        HiFiGANConfig.from_json(tmp_path / "nope.json")


def test_checkpoint_errors(tmp_path):
    config = HiFiGANConfig.from_dict(TINY["1"])
    with pytest.raises(CheckpointError, match="does not exist"):
        load_generator(tmp_path / "g_missing", config)
    (tmp_path / "broken").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_generator(tmp_path / "broken", config)
    torch.save({"model": {}}, tmp_path / "no_generator")
    with pytest.raises(CheckpointError, match=r"no 'generator' entry .*found \['model'\]"):
        load_generator(tmp_path / "no_generator", config)


def test_key_and_shape_mismatches_are_listed(tmp_path):
    state = random_state(TINY["1"])
    state.pop("conv_post.bias")
    state["extra.weight"] = torch.zeros(1)
    torch.save({"generator": state}, tmp_path / "g")
    with pytest.raises(CheckpointError, match=r"1 missing keys: conv_post.bias; 1 unexpected keys: extra.weight"):
        load_generator(tmp_path / "g", HiFiGANConfig.from_dict(TINY["1"]))
    torch.save({"generator": random_state(TINY["1"])}, tmp_path / "g_wide")
    narrow = HiFiGANConfig.from_dict({**TINY["1"], "upsample_initial_channel": 8})
    with pytest.raises(CheckpointError, match=r"shape mismatches: conv_pre.bias expected \(8,\) found \(16,\)"):
        load_generator(tmp_path / "g_wide", narrow)
