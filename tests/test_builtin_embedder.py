import numpy as np
import pytest
import torch

from foley.config import load_config
from foley.data.synth import write_synthetic_set
from foley.evaluate.builtin_embedder import BuiltinEmbedder, dct_matrix
from foley.evaluate.embedding import EmbedOptions, embed_clips
from foley.evaluate.fad import gaussian_stats
from foley.evaluate.protocols import class_files, get_protocol
from foley.evaluate.scores import score_classes


@pytest.mark.parametrize("protocol", ["dcase2023", "standard"])
def test_same_class_real_clips_score_far_below_every_cross_class_pair(tmp_path, protocol):
    data = load_config("base").data
    synthetic = write_synthetic_set(tmp_path, data.class_names, data.eval_class_names, 12, 12, seed=11, progress=False)
    embedder, framing = BuiltinEmbedder(), get_protocol(protocol)
    train = class_files(synthetic.dev_dir, data.class_names)
    held_out = class_files(synthetic.eval_dir, data.eval_class_names)
    options = EmbedOptions(batch_size=64)
    stats = lambda files: gaussian_stats(np.concatenate(embed_clips(files, embedder, framing, options)))
    generated = {e: stats(held_out[e]) for e in data.eval_class_names}
    reference = {e: stats(train[d]) for d, e in zip(data.class_names, data.eval_class_names)}
    scores = score_classes(data.eval_class_names, generated, reference)
    cross = scores.matrix[~np.eye(7, dtype=bool)]
    assert scores.fad.max() < 0.3 * cross.min(), (scores.fad, cross.min())
    assert all(scores.separated())


def test_embedding_is_deterministic_per_window_and_sized():
    embedder = BuiltinEmbedder()
    windows = torch.randn(5, 16000, dtype=torch.float64) * 0.1
    out = embedder.embed(windows)
    assert out.shape == (5, embedder.dim) and out.dtype == torch.float32
    torch.testing.assert_close(embedder.embed(windows[2:3]), out[2:3], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(out[0], out[1])


def test_mfcc_basis_is_orthonormal():
    basis = dct_matrix(64, 64, torch.device("cpu"))
    torch.testing.assert_close(basis @ basis.T, torch.eye(64, dtype=torch.float64), atol=1e-10, rtol=0)
