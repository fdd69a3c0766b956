"""The saved-embeddings folder: its layout (float32 .npy per class), the manifest, reading it back."""

import json

import numpy as np
import pytest

from foley.evaluate.saved import MANIFEST, EmbeddingSource, is_saved_folder, load_embeddings, save_embeddings
from foley.util.errors import DataError

SOURCE = EmbeddingSource("stats", "stats (test)", "standard", "standard-0123456789", 3, "clips in r", "abc")


def clips(seed, sizes):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((n, 3)) for n in sizes]


def test_saved_embeddings_read_back_exactly_as_float32(tmp_path):
    generated = {"dog": clips(0, [2, 1, 3]), "rain": clips(1, [2, 2])}
    names = {"dog": ["a.wav", "b.wav", "c.wav"], "rain": ["x.wav", "y.wav"]}
    reference = {"dog": clips(2, [5])[0], "rain": clips(3, [4])[0]}
    save_embeddings(tmp_path, SOURCE, generated, names, reference)
    assert is_saved_folder(tmp_path)
    rows = np.load(tmp_path / "dog" / "generated.npy")
    assert rows.dtype == np.float32 and rows.shape == (6, 3)
    np.testing.assert_array_equal(np.load(tmp_path / "rain" / "reference.npy"), reference["rain"].astype(np.float32))
    saved = load_embeddings(tmp_path, ["rain", "dog"])
    assert saved.source == SOURCE and saved.clips() == {"rain": 2, "dog": 3} and saved.generated_names == {
        "rain": names["rain"], "dog": names["dog"]}
    for name in ("dog", "rain"):
        for ours, theirs in zip(saved.generated[name], generated[name]):
            np.testing.assert_array_equal(ours, theirs.astype(np.float32))
    save_embeddings(tmp_path / "stats-only", SOURCE, generated, names, None)
    assert load_embeddings(tmp_path / "stats-only", ["dog"]).reference is None


def test_damaged_folders_are_named(tmp_path):
    save_embeddings(tmp_path, SOURCE, {"dog": clips(0, [2, 2])}, {"dog": ["a", "b"]}, None)
    with pytest.raises(DataError, match="no class\\(es\\) rain; they hold dog"):
        load_embeddings(tmp_path, ["rain"])
    np.save(tmp_path / "dog" / "generated.npy", np.zeros((3, 3), np.float32))
    with pytest.raises(DataError, match="holds 3 rows; embeddings.json lists 4"):
        load_embeddings(tmp_path, ["dog"])
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    (tmp_path / MANIFEST).write_text(json.dumps({**manifest, "format": 9}))
    with pytest.raises(DataError, match="format 9"):
        load_embeddings(tmp_path, ["dog"])
