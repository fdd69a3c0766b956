"""A weight-free Embedder for tests: three statistics of each window, and a count of its calls."""

import torch


class StatsEmbedder:
    sample_rate, dim = 16000, 3
    window, hop = 15600, 15360  # VGGish's example framing under the standard protocol

    def __init__(self, name="stats"):
        self.name, self.calls = name, 0

    @classmethod
    def load(cls, weights, device):
        return cls()

    @classmethod
    def random(cls, device, seed):
        return cls()

    def embed(self, windows):
        self.calls += 1
        return torch.stack([windows.mean(1), windows.std(1), windows.abs().max(1).values], 1).float()


class RefusingEmbedder(StatsEmbedder):
    """Fails when called: what a test passes when everything must come from the cache."""

    def embed(self, windows):
        raise AssertionError("should have been served from the cache")
