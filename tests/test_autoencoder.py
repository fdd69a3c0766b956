import re

import pytest
import torch

from foley.config import load_config
from foley.models.autoencoder import SILENCE, Autoencoder, ResBlock, autoencoder_loss
from foley.models.builders import build_autoencoder
from foley.quantize.ema import ResidualQuantizer

PAPER_CONFIGS = ["dcase_baseline", "rvq", "rvq_stride42", "rvq_stride24"]


def _branch(kernel):  # the baseline's encoder branch at stride 4 = (2,2),(2,2): (key suffix, shape)
    return [
        ("0.weight", (64, 1, kernel, kernel)), ("0.bias", (64,)),
        ("2.weight", (128, 64, kernel, kernel)), ("2.bias", (128,)),
        ("4.weight", (128, 128, 3, 3)), ("4.bias", (128,)),
    ] + [
        item
        for block in (5, 6)
        for item in [
            (f"{block}.conv.1.weight", (32, 128, 3, 3)), (f"{block}.conv.1.bias", (32,)),
            (f"{block}.conv.3.weight", (128, 32, 1, 1)), (f"{block}.conv.3.bias", (128,)),
        ]
    ]


# The DCASE baseline VQVAE() state dict, in order (read off its vqvae.py).
BASELINE_LAYOUT = (
    [(f"enc_b.blocks_{i + 1}.{k}", s) for i, kernel in enumerate((4, 2, 6, 8)) for k, s in _branch(kernel)]
    + [("quantize_conv_b.weight", (64, 128, 1, 1)), ("quantize_conv_b.bias", (64,))]
    + [("quantize_b.embed", (64, 512)), ("quantize_b.cluster_size", (512,)), ("quantize_b.embed_avg", (64, 512))]
    + [("dec.blocks.0.weight", (128, 64, 3, 3)), ("dec.blocks.0.bias", (128,))]
    + [
        item
        for block in (1, 2)
        for item in [
            (f"dec.blocks.{block}.conv.1.weight", (32, 128, 3, 3)), (f"dec.blocks.{block}.conv.1.bias", (32,)),
            (f"dec.blocks.{block}.conv.3.weight", (128, 32, 1, 1)), (f"dec.blocks.{block}.conv.3.bias", (128,)),
        ]
    ]
    + [("dec.blocks.4.weight", (128, 64, 4, 4)), ("dec.blocks.4.bias", (64,))]
    + [("dec.blocks.6.weight", (64, 1, 4, 4)), ("dec.blocks.6.bias", (1,))]
)


def baseline_name_to_ours(name: str) -> str:
    name = re.sub(r"enc_b\.blocks_(\d)", lambda m: f"encoder.branches.{int(m.group(1)) - 1}", name)
    return (
        name.replace("quantize_conv_b", "pre_quantize")
        .replace("quantize_b.", "quantizer.levels.0.")
        .replace("dec.blocks", "decoder.blocks")
    )


def test_baseline_config_has_exactly_the_baselines_layers():
    config = load_config("dcase_baseline")
    model = build_autoencoder(config.autoencoder, (80, 344))
    ours = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    assert ours == [(baseline_name_to_ours(k), s) for k, s in BASELINE_LAYOUT]
    assert sum(p.numel() for p in model.parameters()) == 2_207_297


@pytest.mark.parametrize("name", PAPER_CONFIGS)
def test_one_full_size_training_step(name):
    config = load_config(name)
    torch.manual_seed(0)
    model = build_autoencoder(config.autoencoder, (80, 344))
    mel = torch.randn(1, 80, 344) - 5
    result = model.encode(mel)
    assert tuple(result.codes.shape[2:]) == config.latent_shape == model.latent_shape
    assert result.codes.shape[1] == config.autoencoder.quantizer.levels
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-4)
    losses, codes = autoencoder_loss(model, mel, config.autoencoder.quantizer.commitment)
    losses["loss"].backward()
    optimizer.step()
    assert torch.isfinite(losses["loss"])
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("strides", [[(2, 2)], [(2, 4), (2, 4)], [(4, 1), (1, 4)], [(8, 8)], [(1, 2), (2, 1), (2, 2)]])
def test_any_power_of_two_strides_give_input_sized_output(strides):
    model = Autoencoder((80, 344), strides, ResidualQuantizer(8, 2, 16), channel=16, n_res_block=1, n_res_channel=4)
    mel = torch.randn(2, 80, 344)
    recon, result = model(mel)
    assert recon.shape == mel.shape
    sf = torch.tensor([s[0] for s in strides]).prod().item()
    st = torch.tensor([s[1] for s in strides]).prod().item()
    assert tuple(result.codes.shape[2:]) == (-(-80 // sf), -(-344 // st))


def test_each_strided_branch_conv_outputs_input_over_stride():
    model = Autoencoder((80, 344), [(2, 4), (4, 2)], ResidualQuantizer(8, 1, 16), channel=16, n_res_block=0)
    x = torch.randn(1, 1, 80, 352)
    for branch in model.encoder.branches:
        h = branch[1](branch[0](x))
        assert h.shape[2:] == (40, 88)
        assert branch[2](h).shape[2:] == (10, 44)


def test_decoding_codes_reproduces_the_forward_pass():
    torch.manual_seed(1)
    model = Autoencoder((80, 344), [(2, 4), (2, 4)], ResidualQuantizer(8, 3, 16), channel=16).eval()
    mel = torch.randn(2, 80, 344)
    recon, result = model(mel)
    torch.testing.assert_close(model.decode_codes(result.codes), recon, atol=1e-5, rtol=1e-5)


def test_resblock_skip_carries_relu_of_its_input_as_the_baseline():
    torch.manual_seed(2)
    block = ResBlock(4, 2)
    x = torch.randn(1, 4, 5, 5)
    conv1, conv2 = block.conv[1], block.conv[3]
    expected = torch.relu(x) + conv2(torch.relu(conv1(torch.relu(x))))
    torch.testing.assert_close(block(x), expected)


def test_wrong_input_shape_is_named():
    model = Autoencoder((80, 344), [(2, 2)], ResidualQuantizer(8, 1, 16), channel=8)
    with pytest.raises(ValueError, match=r"expected mels \(batch, 80, 344\), got \(1, 80, 100\)"):
        model(torch.randn(1, 80, 100))


def _train_toy(dropout, steps=150):
    """A tiny 3-level RVQ autoencoder trained on smooth random 'mels'; returns it and held-out mels."""
    torch.manual_seed(3)
    basis = torch.randn(6, 16, 32).cumsum(-1).cumsum(-2) / 20  # smooth patterns, mixed per clip
    mels = torch.einsum("nk,khw->nhw", torch.randn(96, 6), basis)
    model = Autoencoder((16, 32), [(2, 2), (2, 2)], ResidualQuantizer(8, 3, 4, decay=0.9, init="kmeans", dropout=dropout),
                        channel=16, n_res_block=1, n_res_channel=8)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        batch = mels[torch.randint(0, 64, (16,))]
        losses, _ = autoencoder_loss(model.train(), batch, 0.25)
        optimizer.zero_grad()
        losses["loss"].backward()
        optimizer.step()
    return model.eval(), mels[64:]


def _errors_by_levels(model, mels):
    with torch.no_grad():
        codes = model.encode(mels).codes
        return [float((model.decode_codes(codes[:, :k]) - mels).pow(2).mean()) for k in (1, 2, 3)]


def test_with_quantizer_dropout_decoding_more_levels_never_does_worse(one_torch_thread):
    model, held_out = _train_toy(dropout=0.5)
    errors = _errors_by_levels(model, held_out)
    assert errors[2] <= errors[1] <= errors[0], errors
    assert errors[2] < 0.9 * errors[0], errors  # the later levels add detail


def _standardized_pair(seed: int = 3):
    """A standardizing autoencoder and a plain one with the same weights."""
    torch.manual_seed(seed)
    plain = Autoencoder((80, 40), [(4, 4), (2, 2)], ResidualQuantizer(8, 2, 16), channel=16).eval()
    standard = Autoencoder((80, 40), [(4, 4), (2, 2)], ResidualQuantizer(8, 2, 16), channel=16, standardize=True).eval()
    standard.load_state_dict({**plain.state_dict(), "mel_mean": torch.tensor(0.0), "mel_std": torch.tensor(1.0)})
    return plain, standard


def test_standardize_sets_the_training_mels_mean_and_std_and_maps_both_ends():
    plain, standard = _standardized_pair()
    train = torch.randn(6, 80, 40) * 3.0 - 6.0
    standard.set_standardization(train)
    mean, std = train.double().mean().item(), train.double().std().item()
    assert standard.mel_mean.item() == pytest.approx(mean, rel=1e-6)
    assert standard.mel_std.item() == pytest.approx(std, rel=1e-6)
    mel = torch.randn(2, 80, 40) * 3.0 - 6.0
    # the encoder sees the standardized mel; the network is the plain one between the two maps
    expected = plain.encode((mel - mean) / std)
    got = standard.encode(mel)
    torch.testing.assert_close(got.quantized, expected.quantized)
    assert torch.equal(got.codes, expected.codes)
    torch.testing.assert_close(standard.decode(got.quantized), plain.decode(expected.quantized) * std + mean)
    # an input padded up to the stride is padded with silence on the mel scale, standardized
    odd = Autoencoder((78, 38), [(4, 4), (2, 2)], ResidualQuantizer(8, 2, 16), channel=16, standardize=True).eval()
    odd.set_standardization(train)
    short = mel[:, :78, :38]
    padded = torch.nn.functional.pad(short, (0, 2, 0, 2), value=SILENCE)
    by_hand = odd.quantizer(odd.pre_quantize(odd.encoder((padded[:, None] - mean) / std)))
    torch.testing.assert_close(odd.encode(short).quantized, by_hand.quantized)


def test_without_standardize_the_state_dict_has_no_buffers_and_set_is_refused():
    plain, standard = _standardized_pair()
    assert not any(k.startswith("mel_") for k in plain.state_dict())
    assert {"mel_mean", "mel_std"} <= set(standard.state_dict())
    with pytest.raises(ValueError, match="without standardize"):
        plain.set_standardization(torch.zeros(1, 80, 40))


def test_a_standardizing_checkpoint_round_trips_and_old_checkpoints_load_without(tmp_path):
    from foley.models.builders import autoencoder_spec, load_autoencoder
    from foley.util.checkpoint import model_payload, save_checkpoint

    section = load_config("quick").autoencoder
    assert section.standardize in (True, False)
    for standardize in (True, False):
        config = load_config("toy", overrides=[f"autoencoder.standardize={str(standardize).lower()}"]).autoencoder
        model = build_autoencoder(config, (80, 32))
        if standardize:
            model.set_standardization(torch.randn(4, 80, 32) * 2 - 5)
        spec = autoencoder_spec(model, config)
        if not standardize:  # a checkpoint written before the key existed
            spec["autoencoder"].pop("standardize")
        save_checkpoint(tmp_path / f"{standardize}.pt", model_payload("autoencoder", spec, model))
        loaded, loaded_section = load_autoencoder(tmp_path / f"{standardize}.pt")
        assert loaded_section.standardize is standardize
        for key, value in model.state_dict().items():
            assert torch.equal(loaded.state_dict()[key], value), key
