"""VGGish: its front end against the AudioSet mel_features formulas computed here in numpy, the
torchvggish state-dict layout, strict loading, and the forward pass against a functional one."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from foley.evaluate.embedding import EmbedOptions, benchmark_embedder, embed_clips
from foley.evaluate.protocols import DCASE2023, STANDARD, ClipArray
from foley.models import vggish_input
from foley.models.vggish import VGGish, VGGishEmbedder
from foley.registry import EMBEDDERS
from foley.util.errors import CheckpointError, FoleyError

VGGISH_WEIGHTS = EMBEDDERS.entry("vggish").weights
WEIGHTS_FILE, WEIGHTS_URL = VGGISH_WEIGHTS.file, VGGISH_WEIGHTS.source

TORCHVGGISH_SHAPES = {
    "features.0.weight": (64, 1, 3, 3), "features.0.bias": (64,),
    "features.3.weight": (128, 64, 3, 3), "features.3.bias": (128,),
    "features.6.weight": (256, 128, 3, 3), "features.6.bias": (256,),
    "features.8.weight": (256, 256, 3, 3), "features.8.bias": (256,),
    "features.11.weight": (512, 256, 3, 3), "features.11.bias": (512,),
    "features.13.weight": (512, 512, 3, 3), "features.13.bias": (512,),
    "embeddings.0.weight": (4096, 12288), "embeddings.0.bias": (4096,),
    "embeddings.2.weight": (4096, 4096), "embeddings.2.bias": (4096,),
    "embeddings.4.weight": (128, 4096), "embeddings.4.bias": (128,),
}


def numpy_log_mel(signal, rate=16000):
    """mel_features.log_mel_spectrogram with VGGish's parameters, written out from its formulas."""
    win, hop, n_fft = 400, 160, 512
    count = 1 + (len(signal) - win) // hop
    frames = np.stack([signal[i * hop : i * hop + win] for i in range(count)])
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
    spectrum = np.abs(np.fft.rfft(frames * hann, n_fft))
    to_mel = lambda hz: 1127.0 * np.log(1.0 + hz / 700.0)
    bins = to_mel(np.linspace(0.0, rate / 2, n_fft // 2 + 1))
    edges = np.linspace(to_mel(125.0), to_mel(7500.0), 66)
    matrix = np.zeros((n_fft // 2 + 1, 64))
    for band in range(64):
        lo, mid, hi = edges[band : band + 3]
        for k in range(1, n_fft // 2 + 1):
            if lo < bins[k] <= mid:
                matrix[k, band] = (bins[k] - lo) / (mid - lo)
            elif mid < bins[k] < hi:
                matrix[k, band] = (hi - bins[k]) / (hi - mid)
    return np.log(spectrum @ matrix + 0.01)


def chirp():
    t = np.arange(16000) / 16000
    rng = np.random.default_rng(0)
    return np.sin(2 * np.pi * (200 + 3000 * t) * t) + 0.1 * rng.standard_normal(t.size)


def test_front_end_matches_the_mel_features_formulas():
    signal = chirp()
    ours = vggish_input.log_mel(torch.from_numpy(signal)[None])[0].numpy()
    reference = numpy_log_mel(signal)
    assert ours.shape == reference.shape == (98, 64)
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-9)


def test_front_end_batches_and_frames_examples_like_vggish_input():
    signals = torch.from_numpy(np.stack([chirp(), chirp()[::-1].copy()]))
    long = torch.cat([signals, signals[:, :14000]], dim=1)  # 30,000 samples: 186 frames -> 1 example
    examples = vggish_input.waveform_examples(long)
    assert examples.shape == (2, 1, 96, 64)
    np.testing.assert_allclose(examples[1, 0].numpy(), numpy_log_mel(long[1].numpy())[:96], atol=1e-9)
    clip = torch.from_numpy(np.tile(chirp(), 4))  # 64,000 samples: 398 frames -> 4 examples
    assert vggish_input.waveform_examples(clip[None]).shape == (1, 4, 96, 64)


def functional_vggish(state, examples):
    """VGGish written with torch.nn.functional, flattening channels-first with fc1's columns reordered."""
    x = examples[:, None]
    for index in (0, 3, 6, 8, 11, 13):
        x = F.relu(F.conv2d(x, state[f"features.{index}.weight"], state[f"features.{index}.bias"], padding=1))
        if index in (0, 3, 8, 13):
            x = F.max_pool2d(x, 2)
    w0 = state["embeddings.0.weight"].reshape(4096, 6, 4, 512).permute(0, 3, 1, 2).reshape(4096, -1)
    x = F.relu(F.linear(x.flatten(1), w0, state["embeddings.0.bias"]))
    x = F.relu(F.linear(x, state["embeddings.2.weight"], state["embeddings.2.bias"]))
    return F.linear(x, state["embeddings.4.weight"], state["embeddings.4.bias"])


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    torch.manual_seed(0)
    state = {name: torch.randn(shape) * 0.05 for name, shape in TORCHVGGISH_SHAPES.items()}
    path = tmp_path_factory.mktemp("vggish") / WEIGHTS_FILE
    torch.save(state, path)
    return path, state


def test_state_dict_has_the_torchvggish_layout():
    with torch.device("meta"):
        state = VGGish().state_dict()
    assert {name: tuple(t.shape) for name, t in state.items()} == TORCHVGGISH_SHAPES


@pytest.fixture(scope="module")
def embedder(weights_file):
    return VGGishEmbedder.load(weights_file[0])


def test_weights_load_strictly_and_the_embedding_matches_the_functional_network(weights_file, embedder):
    _, state = weights_file
    for name, tensor in embedder.model.state_dict().items():
        assert torch.equal(tensor, state[name]), name
    windows = torch.from_numpy(np.stack([chirp(), 0.3 * chirp()[::-1].copy()]))
    ours = embedder.embed(windows)
    examples = torch.from_numpy(np.stack([numpy_log_mel(w)[:96] for w in windows.numpy()])).float()
    expected = functional_vggish(state, examples)
    assert ours.shape == (2, 128) and embedder.dim == 128 and embedder.name.startswith("vggish-")
    assert (expected < 0).any(), "the embedding is taken before any ReLU"
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5 * expected.abs().max().item())


def test_a_dcase2023_clip_gives_ten_vggish_embeddings(embedder):
    audio = np.tile(chirp(), 6)[:88200] * 0.5
    (embeddings,) = embed_clips([ClipArray(audio, 22050)], embedder, DCASE2023, EmbedOptions(batch_size=4))
    assert embeddings.shape == (10, 128)
    values = np.round(audio * 32767)
    window = torch.from_numpy(values[24000:40000] / values.max())[None]
    alone = embedder.embed(window)[0].numpy()  # float32 sums differ with the batch: compare at 1e-5 of the scale
    np.testing.assert_allclose(embeddings[3], alone, rtol=1e-5, atol=1e-5 * np.abs(alone).max())


def test_missing_weights_name_the_file_and_where_to_get_it(tmp_path):
    with pytest.raises(CheckpointError) as err:
        VGGishEmbedder.load_network(tmp_path / "nowhere.pth")
    assert WEIGHTS_FILE in str(err.value) and WEIGHTS_URL in str(err.value)


def test_wrong_weights_report_every_key_and_shape(tmp_path):
    state = {name: torch.zeros(shape) for name, shape in TORCHVGGISH_SHAPES.items() if not name.startswith("embeddings")}
    state["features.0.weight"] = torch.zeros(32, 1, 3, 3)
    state["classifier.weight"] = torch.zeros(2)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError) as err:
        VGGishEmbedder.load_network(tmp_path / "bad.pth")
    message = str(err.value)
    for part in ("missing embeddings.0.weight", "missing embeddings.4.bias", "unexpected classifier.weight",
                 "features.0.weight has shape (32, 1, 3, 3), expected (64, 1, 3, 3)"):
        assert part in message
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="corrupt"):
        VGGishEmbedder.load_network(tmp_path / "junk.pth")


def test_embedder_refuses_windows_that_are_not_one_example():
    with torch.device("meta"):
        embedder = VGGishEmbedder(VGGish(), "unallocated")
    with pytest.raises(FoleyError, match="15600 to 30959"):
        embedder.embed(torch.zeros(1, 15599, dtype=torch.float64))


class CountingEmbedder:
    name, sample_rate, dim = "counting", 16000, 3
    window, hop = vggish_input.EXAMPLE_SAMPLES, vggish_input.EXAMPLE_HOP_SAMPLES

    def __init__(self):
        self.shapes = []

    def embed(self, windows):
        self.shapes.append(tuple(windows.shape))
        return torch.stack([windows.mean(1), windows.std(1), windows.abs().max(1).values], 1).float()


def test_benchmark_reports_embeddings_per_second_per_batch_size():
    embedder = CountingEmbedder()
    results = benchmark_embedder(embedder, DCASE2023, batch_sizes=(1, 4), repeats=2)
    assert [r.batch_size for r in results] == [1, 4]
    assert all(r.embeddings_per_second > 0 and r.device == "cpu" for r in results)
    assert embedder.shapes == [(1, 16000)] * 3 + [(4, 16000)] * 3  # one warm-up and 2 timed calls per size
    embedder.shapes.clear()
    benchmark_embedder(embedder, STANDARD, batch_sizes=(2,), repeats=1)
    assert embedder.shapes == [(2, vggish_input.EXAMPLE_SAMPLES)] * 2  # the embedder's own window
