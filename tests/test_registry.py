"""Adding a quantizer, an embedder or a vocoder is one class plus one registration: dummies of each
kind, registered here, run through the autoencoder, the sample stage and `foley fad`."""

import csv

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import TOY
from torch import nn

from foley.config import load_config
from foley.models.builders import build_autoencoder, load_autoencoder
from foley.quantize.base import QuantizedResult
from foley.registry import EMBEDDERS, QUANTIZERS, VOCODERS, WeightsFile
from foley.stages.commands.cli import main
from foley.util.errors import CheckpointError, ConfigError


class NearestQuantizer(nn.Module):
    """A fixed random codebook, nearest code, no learning: the least a quantizer can be."""

    def __init__(self, dim: int, size: int):
        super().__init__()
        self.dim, self.size = dim, size
        self.register_buffer("codebook", torch.randn(size, dim, generator=torch.Generator().manual_seed(0)))

    @classmethod
    def from_config(cls, dim, section):
        return cls(dim, section.codebook_size)

    @property
    def level_count(self):
        return 1

    def forward(self, z, levels=None):
        flat = z.permute(0, 2, 3, 1).reshape(-1, self.dim)
        codes = torch.cdist(flat.float(), self.codebook).argmin(1)
        chosen = self.codebook[codes].view(z.shape[0], z.shape[2], z.shape[3], self.dim).permute(0, 3, 1, 2)
        return QuantizedResult(z + (chosen - z).detach(), codes.view(z.shape[0], 1, *z.shape[2:]),
                               (chosen - z).pow(2).mean())

    def decode_codes(self, codes):
        return self.codebook[codes[:, 0]].permute(0, 3, 1, 2)


class ToneVocoder:
    """Every mel -> the same 440 Hz tone: a vocoder whose output is recognisable."""

    name, sample_rate, hop_length = "tone", 22050, 256

    @classmethod
    def from_config(cls, config, trained_dir=None):
        return cls()

    def to(self, device):
        return self

    def __call__(self, mels):
        t = torch.arange(mels.shape[-1] * self.hop_length) / self.sample_rate
        return (0.5 * torch.sin(2 * torch.pi * 440 * t)).expand(mels.shape[0], -1)


class MeanEmbedder:
    """Two numbers per 0.5 s window; loads 'weights' from a text file holding a scale factor."""

    sample_rate, dim, window, hop = 16000, 2, 8000, 8000

    def __init__(self, scale=1.0):
        self.scale, self.name = scale, f"mean-x{scale:g}"

    @classmethod
    def load(cls, weights, device):
        return cls(1.0 if weights is None else float(open(weights).read()))

    @classmethod
    def random(cls, device, seed):
        return cls()

    def embed(self, windows):
        return self.scale * torch.stack([windows.mean(1), windows.std(1)], 1).float()


@pytest.fixture
def dummies():
    weights = WeightsFile("scale.txt", "the test itself", "--mean-weights")
    with QUANTIZERS.registered("nearest", NearestQuantizer), VOCODERS.registered("tone", ToneVocoder), \
            EMBEDDERS.registered("mean", MeanEmbedder, weights):
        yield


def test_a_registered_quantizer_and_vocoder_run_through_the_pipeline(dummies, tmp_path):
    run = tmp_path / "run"
    sets = [*TOY, "autoencoder.quantizer.type=nearest", "autoencoder.quantizer.levels=1", "vocoder.type=tone"]
    stages = "prepare,train_vqvae,extract_codes,train_prior,train_vocoder,sample"
    assert main(["run", "-q", "--out", str(run), "--stages", stages, *[a for s in sets for a in ("--set", s)]]) == 0
    model, _ = load_autoencoder(run / "train_vqvae" / "vqvae.pt")
    assert isinstance(model.quantizer, NearestQuantizer) and "quantizer.codebook" in model.state_dict()
    codes = np.load(run / "extract_codes" / "codes.npy")
    assert codes.max() < 16 and codes.shape[1:] == load_config("quick", sets).map_shape
    audio, rate = sf.read(run / "sample" / "samples" / "rain" / "0001.wav")
    spectrum = np.abs(np.fft.rfft(audio))
    assert rate == 22050 and abs(np.argmax(spectrum) * rate / len(audio) - 440) < 1  # the tone vocoder made it


def test_a_registered_embedder_scores_folders_and_takes_its_weights_option(dummies, toy_run, tmp_path, capsys):
    (tmp_path / "scale.txt").write_text("2")
    samples, reference = toy_run / "sample" / "samples", toy_run / "prepare" / "synthetic" / "eval"
    args = ["fad", str(samples), "--reference", str(reference), "--protocol", "standard", "--embedder", "mean",
            "--out", str(tmp_path / "fad.csv")]
    assert main(args) == 2 and "no mean weights were given" in capsys.readouterr().err
    assert main([*args, "--mean-weights", str(tmp_path / "scale.txt"), "-q"]) == 0
    rows = list(csv.DictReader(open(tmp_path / "fad.csv")))
    assert {r["embedder"] for r in rows} == {"mean-x2"} and rows[-1]["class"] == "mean"
    load_config("quick", ["evaluate.embedder=mean", f"evaluate.weights.mean={tmp_path / 'scale.txt'}"])


def test_configs_and_builders_read_the_registry():
    with pytest.raises(ConfigError, match="quantizer.type' must be one of vq, rvq$"):
        load_config("quick", ["autoencoder.quantizer.type=fsq"])
    with pytest.raises(ConfigError, match="'evaluate.weights.vgish' names no embedder that takes weights; "
                                          "embedders with weights: vggish"):
        load_config("quick", ["evaluate.weights.vgish=x.pth"])
    with QUANTIZERS.registered("nearest", NearestQuantizer):
        section = load_config("quick", ["autoencoder.quantizer.type=nearest"]).autoencoder
        assert isinstance(build_autoencoder(section, (80, 344)).quantizer, NearestQuantizer)
    assert "nearest" not in QUANTIZERS.names()
    with pytest.raises(ValueError, match="already registered"):
        QUANTIZERS.register("vq", NearestQuantizer)


def test_missing_weights_name_the_file_and_where_to_get_it(tmp_path):
    weights = WeightsFile("w.pth", "https://example.org/w.pth", "--w-weights")
    with pytest.raises(CheckpointError, match="no w weights were given.*'w.pth', released at https://example.org/w.pth"):
        weights.check("w", None)
    with pytest.raises(CheckpointError, match=f"w weights not found at '{tmp_path / 'x'}'.*--w-weights"):
        weights.check("w", tmp_path / "x")
