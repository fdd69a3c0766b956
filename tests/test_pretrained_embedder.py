"""The base of the embedders over a pretrained network (foley.evaluate.pretrained): a tiny subclass, registered
with its weights file, is loaded, refused and randomly initialised by the base alone; VGGish and PANNs define
only what differs."""

import hashlib

import pytest
import torch
from torch import nn

from foley.evaluate.embedders import build_embedder, random_embedder
from foley.evaluate.pretrained import PretrainedEmbedder
from foley.models.panns import PannsEmbedder
from foley.models.vggish import VGGishEmbedder
from foley.registry import EMBEDDERS, WeightsFile
from foley.util.errors import CheckpointError

WEIGHTS = WeightsFile("tiny.pt", "https://example.org/tiny.pt", "--tiny-weights")


class TinyEmbedder(PretrainedEmbedder):
    registry_name, title, file_kind = "tiny", "Tiny", "tiny file"
    sample_rate, dim, window, hop = 16000, 2, 4, 4

    @staticmethod
    def network():
        return nn.Linear(4, 2)

    @staticmethod
    def state_dict_in(content, path):
        if not isinstance(content, dict):
            raise CheckpointError(f"'{path}' is no dict")
        return content

    @staticmethod
    def check_state_dict(state, expected, source):
        found = {name: tuple(t.shape) for name, t in state.items()}
        if found != expected:
            raise CheckpointError(f"'{source}' has {found}, expected {expected}")

    @staticmethod
    def network_with(state):
        model = nn.Linear(4, 2)
        model.load_state_dict(state, strict=True)
        return model

    def embed(self, windows):
        return self.model(windows.float())


@pytest.fixture
def tiny():
    with EMBEDDERS.registered("tiny", TinyEmbedder, WEIGHTS):
        yield


def test_the_base_loads_strictly_freezes_and_names_by_the_weights_digest(tiny, tmp_path):
    state = {"weight": torch.randn(2, 4), "bias": torch.randn(2)}
    torch.save(state, tmp_path / "tiny.pt")
    embedder = build_embedder("tiny", {"tiny": tmp_path / "tiny.pt"})
    assert isinstance(embedder, TinyEmbedder)
    assert embedder.name == "tiny-" + hashlib.sha256((tmp_path / "tiny.pt").read_bytes()).hexdigest()[:12]
    assert not embedder.model.training and not any(p.requires_grad for p in embedder.model.parameters())
    for name, tensor in embedder.model.state_dict().items():
        assert torch.equal(tensor, state[name])


def test_the_base_refuses_missing_corrupt_and_wrong_weights_with_the_subclass_words(tiny, tmp_path):
    with pytest.raises(CheckpointError) as err:
        TinyEmbedder.load(tmp_path / "nowhere.pt")
    assert str(err.value) == WEIGHTS.missing("tiny", tmp_path / "nowhere.pt")
    (tmp_path / "junk.pt").write_bytes(b"")
    with pytest.raises(CheckpointError) as err:
        TinyEmbedder.load(tmp_path / "junk.pt")
    assert str(err.value) == f"Tiny weights '{tmp_path / 'junk.pt'}' are corrupt or not a tiny file (EOFError)"
    torch.save([1], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="list.pt' is no dict"):
        TinyEmbedder.load(tmp_path / "list.pt")
    torch.save({"weight": torch.zeros(3, 4)}, tmp_path / "wrong.pt")
    with pytest.raises(CheckpointError, match=r"has \{'weight': \(3, 4\)\}, expected \{'weight': \(2, 4\), 'bias': \(2,\)\}"):
        TinyEmbedder.load(tmp_path / "wrong.pt")


def test_random_weights_follow_the_seed_and_leave_the_global_generator_alone(tiny):
    torch.manual_seed(7)
    expected_next = torch.rand(3)
    torch.manual_seed(7)
    first, again, other = random_embedder("tiny", seed=1), TinyEmbedder.random(seed=1), TinyEmbedder.random(seed=2)
    assert torch.equal(torch.rand(3), expected_next)
    assert first.name == "tiny-random-weights" and not first.model.training
    assert torch.equal(first.model.weight, again.model.weight) and not torch.equal(first.model.weight, other.model.weight)


@pytest.mark.parametrize("embedder", [VGGishEmbedder, PannsEmbedder])
def test_vggish_and_panns_keep_only_what_differs(embedder):
    assert issubclass(embedder, PretrainedEmbedder) and EMBEDDERS.get(embedder.registry_name) is embedder
    assert not {"__init__", "load", "random", "load_network", "read_weights", "layout"} & set(vars(embedder))
