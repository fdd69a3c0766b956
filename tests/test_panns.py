"""PANNs Wavegram-Logmel-CNN14: the official state-dict layout, strict loading of a checkpoint saved in
that layout from random weights, the front end against its formulas, and the forward pass against a
functional network written here from the official model's description (float64), at 32 kHz,
including a length on which the official code fails and the DCASE 2024 fork crops."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from foley.models.panns import WEIGHTS_FILE, PannsEmbedder, WavegramLogmelCnn14, min_samples
from foley.util.errors import AudioError, CheckpointError


def _bn(prefix, channels):
    return {f"{prefix}.weight": (channels,), f"{prefix}.bias": (channels,), f"{prefix}.running_mean": (channels,),
            f"{prefix}.running_var": (channels,), f"{prefix}.num_batches_tracked": ()}


def _block(prefix, c_in, c_out, kernel):
    return {f"{prefix}.conv1.weight": (c_out, c_in, *kernel), f"{prefix}.conv2.weight": (c_out, c_out, *kernel),
            **_bn(f"{prefix}.bn1", c_out), **_bn(f"{prefix}.bn2", c_out)}


def official_shapes():
    """audioset_tagging_cnn's Wavegram_Logmel_Cnn14(32000, 1024, 320, 64, 50, 14000, 527), in registration order."""
    shapes = {"pre_conv0.weight": (64, 1, 11), **_bn("pre_bn0", 64)}
    for index, (c_in, c_out) in enumerate([(64, 64), (64, 128), (128, 128)], start=1):
        shapes.update(_block(f"pre_block{index}", c_in, c_out, (3,)))
    shapes.update(_block("pre_block4", 4, 64, (3, 3)))
    shapes["spectrogram_extractor.stft.conv_real.weight"] = (513, 1, 1024)
    shapes["spectrogram_extractor.stft.conv_imag.weight"] = (513, 1, 1024)
    shapes["logmel_extractor.melW"] = (513, 64)
    shapes.update(_bn("bn0", 64))
    widths = [(1, 64), (128, 128), (128, 256), (256, 512), (512, 1024), (1024, 2048)]
    for index, (c_in, c_out) in enumerate(widths, start=1):
        shapes.update(_block(f"conv_block{index}", c_in, c_out, (3, 3)))
    shapes.update({"fc1.weight": (2048, 2048), "fc1.bias": (2048,), "fc_audioset.weight": (527, 2048),
                   "fc_audioset.bias": (527,)})
    return shapes


def dft_kernels(n_fft=1024):
    """The DFT of a periodic Hann window: cos and -sin kernels (bins, 1, n_fft)."""
    n = torch.arange(n_fft, dtype=torch.float64)
    window = torch.sin(math.pi * n / n_fft) ** 2
    angle = 2 * math.pi * torch.arange(n_fft // 2 + 1, dtype=torch.float64)[:, None] * n / n_fft
    return (torch.cos(angle) * window)[:, None].float(), (-torch.sin(angle) * window)[:, None].float()


def slaney_mel_bank(sr=32000, n_fft=1024, n_mels=64, fmin=50.0, fmax=14000.0):
    """The Slaney mel filter bank (513, 64) from its published definition."""
    step, knee = 200.0 / 3, 1000.0
    log_step = math.log(6.4) / 27

    def to_mel(f):
        return np.where(f < knee, f / step, knee / step + np.log(np.maximum(f, 1e-9) / knee) / log_step)

    def to_hz(m):
        return np.where(m < knee / step, m * step, knee * np.exp(log_step * (m - knee / step)))

    edges = to_hz(np.linspace(to_mel(np.array(fmin)), to_mel(np.array(fmax)), n_mels + 2))
    bins = np.linspace(0, sr / 2, n_fft // 2 + 1)
    bank = np.zeros((n_fft // 2 + 1, n_mels))
    for m in range(n_mels):
        lower = (bins - edges[m]) / (edges[m + 1] - edges[m])
        upper = (edges[m + 2] - bins) / (edges[m + 2] - edges[m + 1])
        bank[:, m] = np.maximum(0, np.minimum(lower, upper)) * 2 / (edges[m + 2] - edges[m])
    return bank


def random_state(seed=0):
    """Random weights in the official layout; the STFT kernels are the true ones (the reference computes
    its spectrogram with torch.stft), the mel matrix random and non-negative."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in official_shapes().items():
        if name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(1000 + len(state))
        elif name.endswith("running_var"):
            state[name] = 0.5 + torch.rand(shape, generator=generator)
        elif name.endswith(("running_mean", ".bias")):
            state[name] = 0.1 * torch.randn(shape, generator=generator)
        elif len(shape) == 1:  # BatchNorm scale
            state[name] = 1.0 + 0.2 * torch.randn(shape, generator=generator)
        else:
            fan_in = math.prod(shape[1:])
            state[name] = torch.randn(shape, generator=generator) * math.sqrt(2.0 / fan_in)
    state["bn0.running_mean"] = -40.0 + 5 * torch.randn(64, generator=generator)  # log-mel dB values sit far from 0
    state["bn0.running_var"] = 100.0 + 20 * torch.rand(64, generator=generator)
    real, imag = dft_kernels()
    state["spectrogram_extractor.stft.conv_real.weight"], state["spectrogram_extractor.stft.conv_imag.weight"] = real, imag
    state["logmel_extractor.melW"] = torch.from_numpy(slaney_mel_bank()).float() * (
        0.5 + torch.rand(513, 64, generator=generator))
    return state


# ---------------------------------------------------------------------------------------------
# The reference network, from the official model's description, in float64


def _batch_norm(x, s, prefix):
    return F.batch_norm(x, s[f"{prefix}.running_mean"], s[f"{prefix}.running_var"], s[f"{prefix}.weight"],
                        s[f"{prefix}.bias"], training=False, eps=1e-5)


def _block_2d(x, s, prefix, pool):
    x = F.relu(_batch_norm(F.conv2d(x, s[f"{prefix}.conv1.weight"], padding=1), s, f"{prefix}.bn1"))
    x = F.relu(_batch_norm(F.conv2d(x, s[f"{prefix}.conv2.weight"], padding=1), s, f"{prefix}.bn2"))
    return F.avg_pool2d(x, pool)


def _block_1d(x, s, prefix):
    x = F.relu(_batch_norm(F.conv1d(x, s[f"{prefix}.conv1.weight"], padding=1), s, f"{prefix}.bn1"))
    x = F.relu(_batch_norm(F.conv1d(x, s[f"{prefix}.conv2.weight"], padding=2, dilation=2), s, f"{prefix}.bn2"))
    return F.max_pool1d(x, 4)


def reference_network(state, waveform, crop=True):
    """Embedding and clip-wise output; crop=False is the official code, which fails when the branches differ."""
    s = {k: v.double() for k, v in state.items() if v.is_floating_point()}
    x = waveform.double()
    a = F.relu(_batch_norm(F.conv1d(x[:, None], s["pre_conv0.weight"], stride=5, padding=5), s, "pre_bn0"))
    for index in (1, 2, 3):
        a = _block_1d(a, s, f"pre_block{index}")
    a = torch.stack([a[:, g * 32 : (g + 1) * 32] for g in range(4)], dim=1).permute(0, 1, 3, 2)  # (B, 4, T, 32)
    a = _block_2d(a, s, "pre_block4", (2, 1))
    window = torch.hann_window(1024, periodic=True, dtype=torch.float64)
    power = torch.stft(x, 1024, 320, window=window, center=True, pad_mode="reflect", return_complex=True).abs() ** 2
    mel = 10 * torch.log10(torch.clamp(power.transpose(1, 2) @ s["logmel_extractor.melW"], min=1e-10))  # (B, T, 64)
    m = _batch_norm(mel.transpose(1, 2), s, "bn0").transpose(1, 2)[:, None]  # BatchNorm per mel band
    m = _block_2d(m, s, "conv_block1", (2, 2))
    if crop:
        frames = min(m.shape[2], a.shape[2])
        m, a = m[:, :, :frames], a[:, :, :frames]
    h = torch.cat([m, a], dim=1)
    for index in (2, 3, 4, 5):
        h = _block_2d(h, s, f"conv_block{index}", (2, 2))
    h = _block_2d(h, s, "conv_block6", (1, 1)).mean(dim=3)
    h = h.max(dim=2).values + h.mean(dim=2)
    embedding = F.relu(F.linear(h, s["fc1.weight"], s["fc1.bias"]))
    return embedding, torch.sigmoid(F.linear(embedding, s["fc_audioset.weight"], s["fc_audioset.bias"]))


def clips(length, count=2, seed=0):
    """Chirps with noise at 32 kHz, at different levels."""
    rng = np.random.default_rng(seed)
    t = np.arange(length) / 32000
    out = [(0.5 / (k + 1)) * np.sin(2 * np.pi * (300 + 2000 * (k + 1) * t) * t) + 0.05 * rng.standard_normal(length)
           for k in range(count)]
    return torch.from_numpy(np.stack(out)).float()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """The official file's layout: {'iteration', 'model', 'sampler'} with numpy arrays in the sampler's state."""
    state = random_state()
    path = tmp_path_factory.mktemp("panns") / WEIGHTS_FILE
    sampler = {"indexes_per_class": [np.arange(5), np.arange(3)], "queue": [np.int64(4)], "pointers_of_classes": [0, 1]}
    torch.save({"iteration": 540000, "model": state, "sampler": sampler}, path)
    return path, state


@pytest.fixture(scope="module")
def embedder(checkpoint):
    torch.set_num_threads(1)
    return PannsEmbedder.load(checkpoint[0])


def test_state_dict_has_the_official_layout():
    with torch.device("meta"):
        state = WavegramLogmelCnn14().state_dict()
    assert [(k, tuple(v.shape)) for k, v in state.items()] == list(official_shapes().items())
    with torch.device("meta"):
        parameters = sum(p.numel() for p in WavegramLogmelCnn14().parameters())
    assert len(state) == 138 and parameters == 82_148_943


def test_front_end_equals_the_stft_and_slaney_mel_formulas():
    model = WavegramLogmelCnn14()
    real, imag = dft_kernels()
    torch.testing.assert_close(model.spectrogram_extractor.stft.conv_real.weight, real, atol=1e-7, rtol=0)
    torch.testing.assert_close(model.spectrogram_extractor.stft.conv_imag.weight, imag, atol=1e-7, rtol=0)
    bank = model.logmel_extractor.melW.detach().double().numpy()
    np.testing.assert_allclose(bank, slaney_mel_bank(), atol=1e-8)
    np.testing.assert_allclose(bank.sum(axis=0)[:3], [0.0312039, 0.0335355, 0.0317940], atol=1e-7)
    x = clips(9000)
    window = torch.hann_window(1024, periodic=True, dtype=torch.float64)
    expected = torch.stft(x.double(), 1024, 320, window=window, center=True, pad_mode="reflect", return_complex=True)
    ours = model.spectrogram_extractor(x)[:, 0].transpose(1, 2).double()
    torch.testing.assert_close(ours, expected.abs() ** 2, rtol=1e-4, atol=1e-4 * ours.max().item())


def test_checkpoint_loads_strictly_and_unchanged(checkpoint, embedder):
    _, state = checkpoint
    loaded = embedder.model.state_dict()
    assert list(loaded) == list(state)
    for name, tensor in state.items():
        assert torch.equal(loaded[name], tensor), name
    assert embedder.name.startswith("panns-wglm-") and embedder.dim == 2048 and embedder.sample_rate == 32000


@pytest.mark.parametrize("length", [32000, 32000 + 480])  # 32480 mod 640 = 480: the branches differ by a frame
def test_embedding_equals_the_reference_network(checkpoint, embedder, length):
    _, state = checkpoint
    x = clips(length)
    out = embedder.model(x)
    embedding, clipwise = reference_network(state, x)
    assert out.embedding.shape == (2, 2048) and out.clipwise.shape == (2, 527)
    assert (embedding > 0).double().mean() > 0.2, "random weights must leave a live embedding to compare"
    scale = embedding.abs().max().item()
    torch.testing.assert_close(out.embedding.double(), embedding, rtol=1e-4, atol=1e-4 * scale)
    torch.testing.assert_close(out.clipwise.double(), clipwise, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(embedder.embed(x).double(), embedding, rtol=1e-4, atol=1e-4 * scale)
    if length % 640 >= 320:
        with pytest.raises(RuntimeError):  # the official model, without the fork's crop
            reference_network(state, x, crop=False)


def test_a_clip_embeds_alone_as_in_a_batch(embedder):
    x = clips(20000, count=3, seed=4)
    together = embedder.embed(x)
    alone = embedder.embed(x[1:2])
    torch.testing.assert_close(together[1:2], alone, rtol=1e-5, atol=1e-5 * alone.abs().max().item())


def test_too_short_clips_get_a_clear_error(embedder):
    shortest = min_samples()
    assert 10_000 < shortest < 10_500
    embedder.embed(clips(shortest, count=1))
    with pytest.raises(AudioError, match=f"at least {shortest} samples"):
        embedder.embed(clips(shortest - 1, count=1))


def test_missing_weights_name_the_file_and_where_to_get_it(tmp_path):
    with pytest.raises(CheckpointError) as err:
        PannsEmbedder.load_network(tmp_path / "nowhere.pth")
    message = str(err.value)
    assert WEIGHTS_FILE in message and "zenodo.org/records/3987831" in message and "--panns-weights" in message


def test_a_checkpoint_of_another_model_says_what_it_found(tmp_path):
    cnn14 = {k: torch.zeros(v) for k, v in official_shapes().items() if not k.startswith("pre_")}
    cnn14["conv_block2.conv1.weight"] = torch.zeros(128, 64, 3, 3)
    cnn14["spectrogram_extractor.stft.conv_real.weight"] = torch.zeros(257, 1, 512)
    torch.save({"model": cnn14}, tmp_path / "Cnn14_16k.pth")
    with pytest.raises(CheckpointError) as err:
        PannsEmbedder.load_network(tmp_path / "Cnn14_16k.pth")
    message = str(err.value)
    for part in ("no Wavegram branch", "a 512-point STFT", "527 output classes",
                 "missing pre_conv0.weight, pre_bn0.* (4 tensors), pre_block1.* (10 tensors)",
                 "conv_block2.conv1.weight has shape (128, 64, 3, 3), expected (128, 128, 3, 3)"):
        assert part in message
    assert "unexpected" not in message
    torch.save({"iteration": 3, "optimizer": {"lr": 0.001}}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="holds no PANNs state dict.*found iteration, optimizer"):
        PannsEmbedder.load_network(tmp_path / "other.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="corrupt"):
        PannsEmbedder.load_network(tmp_path / "junk.pth")
