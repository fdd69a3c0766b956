"""Reference statistics: the official gt_embedding.pkl format (written here, read back, decoded without
TensorFlow), .npz files, folders of clips, and the statistics cache."""

import io
import pickle
import pickletools
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fake_embedders import RefusingEmbedder, StatsEmbedder

from foley.evaluate.embedding import EmbedOptions
from foley.evaluate.fad import frechet_distance, gaussian_stats
from foley.evaluate.gt_pickle import (
    decode_feature,
    encode_float_feature,
    encode_int64_feature,
    official_pickle_bytes,
    read_official_stats,
    write_official_stats,
)
from foley.evaluate.protocols import DCASE2023, STANDARD
from foley.evaluate.reference import (
    OFFICIAL_FILE,
    ReferenceStats,
    load_reference,
    load_reference_npz,
    read_official_reference,
    require_compatible,
    save_reference_npz,
)
from foley.util.errors import DataError, FoleyError

OFFICIAL_CLASSES = ["dog_bark", "footstep", "gunshot", "keyboard", "moving_motor_vehicle", "rain", "sneeze_cough"]
# the project's shared folder in a directory above the checkout, where there is one (development machines)
SHARED_GT = Path("shared") / "reference" / "dcase2023_eval_fad_gt"
OFFICIAL_DIR = next((p / SHARED_GT for p in Path(__file__).resolve().parents if (p / SHARED_GT).is_dir()), None)
needs_official = pytest.mark.skipif(
    OFFICIAL_DIR is None or not all((OFFICIAL_DIR / c / OFFICIAL_FILE).is_file() for c in OFFICIAL_CLASSES),
    reason="the official DCASE 2023 gt_embedding.pkl files are not on this machine",
)


class Recorded:
    """Stand-in global for reading pickles in tests: keeps the raw serialized bytes."""

    def __setstate__(self, state):
        self.serialized = state["serialized"]


class RecordingUnpickler(pickle.Unpickler):
    globals_seen = []

    def find_class(self, module, name):
        self.globals_seen.append((module, name))
        return Recorded


def serialized_features(raw: bytes) -> dict:
    return {k: v.serialized for k, v in RecordingUnpickler(io.BytesIO(raw)).load().items()}


def random_stats(dim=5, count=40, seed=0):
    return gaussian_stats(np.random.default_rng(seed).standard_normal((count, dim)) * 3 + 1)


def test_written_pickle_has_the_official_structure_and_reads_back(tmp_path):
    stats = random_stats()
    write_official_stats(tmp_path / OFFICIAL_FILE, stats)
    raw = (tmp_path / OFFICIAL_FILE).read_bytes()
    RecordingUnpickler.globals_seen = []
    features = serialized_features(raw)
    assert list(features) == ["embedding_count", "embedding_length", "mu", "sigma"]
    assert set(RecordingUnpickler.globals_seen) == {("tensorflow.core.example.feature_pb2", "Feature")}
    assert next(pickletools.genops(raw))[0].name == "PROTO"
    assert features["embedding_count"] == b"\x1a\x03\n\x01\x28"  # Int64List [40], packed
    # FloatList read with struct: tag 0x12 (field 2, length), length, tag 0x0a (field 1, packed), length, floats
    body = features["mu"]
    assert body[0] == 0x12 and body[2] == 0x0A and body[1] == len(body) - 2 and body[3] == len(body) - 4
    np.testing.assert_array_equal(struct.unpack("<5f", body[4:]), stats.mu.astype(np.float32))
    back = read_official_stats(tmp_path / OFFICIAL_FILE)
    assert back.count == 40 and back.mu.dtype == np.float64 and back.sigma.shape == (5, 5)
    np.testing.assert_array_equal(back.mu, stats.mu.astype(np.float32))
    np.testing.assert_array_equal(back.sigma, stats.sigma.astype(np.float32))


def test_feature_encoding_golden_bytes():
    assert encode_int64_feature(np.array([128])) == b"\x1a\x04\n\x02\x80\x01"
    assert encode_int64_feature(np.array([1000])) == b"\x1a\x04\n\x02\xe8\x07"
    assert encode_float_feature(np.array([1.0, -2.0])) == b"\x12\x0a\n\x08\x00\x00\x80?\x00\x00\x00\xc0"


def test_decoder_reads_unpacked_and_negative_values_and_skips_unknown_fields():
    unpacked_floats = b"\x12\x0a" + b"\x0d" + struct.pack("<f", 1.5) + b"\x0d" + struct.pack("<f", -0.25)
    np.testing.assert_array_equal(decode_feature(unpacked_floats), [1.5, -0.25])
    minus_one = b"\xff" * 9 + b"\x01"
    unpacked_ints = b"\x1a\x0d" + b"\x08" + minus_one + b"\x08\x07"
    np.testing.assert_array_equal(decode_feature(unpacked_ints), [-1, 7])
    with_unknown = b"\x1a\x07" + b"\x10\x05" + b"\x0a\x03\x01\x02\x03"
    np.testing.assert_array_equal(decode_feature(with_unknown), [1, 2, 3])
    assert decode_feature(b"\x0a\x05\x0a\x03abc") == [b"abc"]


def test_reader_refuses_every_other_global_without_running_it(tmp_path):
    marker = tmp_path / "ran"
    command = f"touch {marker}".encode()
    hostile = b"\x80\x04\x8c\x02os\x8c\x06system\x93\x8c" + bytes([len(command)]) + command + b"\x85R."
    (tmp_path / "evil.pkl").write_bytes(hostile)
    with pytest.raises(DataError, match="refusing global os.system"):
        read_official_stats(tmp_path / "evil.pkl")
    assert not marker.exists()
    (tmp_path / "list.pkl").write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(DataError, match="dict of tf.train.Feature"):
        read_official_stats(tmp_path / "list.pkl")


@needs_official
def test_official_files_give_symmetric_psd_statistics_with_zero_self_distance():
    reference = read_official_reference(OFFICIAL_DIR, OFFICIAL_CLASSES)
    assert reference.protocol == "dcase2023"
    for name, stats in reference.stats.items():
        assert stats.mu.shape == (128,) and stats.sigma.shape == (128, 128) and stats.count == 1000
        np.testing.assert_array_equal(stats.sigma, stats.sigma.T)
        assert np.linalg.eigvalsh(stats.sigma).min() > 0
        assert abs(frechet_distance(stats, stats)) < 1e-6, name
        raw = (OFFICIAL_DIR / name / OFFICIAL_FILE).read_bytes()
        assert serialized_features(official_pickle_bytes(stats)) == serialized_features(raw)
    assert frechet_distance(reference.stats["rain"], reference.stats["keyboard"]) > 1.0


def make_reference(classes=("a", "b")):
    stats = {c: random_stats(seed=i) for i, c in enumerate(classes)}
    return ReferenceStats(stats, "standard", "vggish-0123", "test")


def test_npz_round_trip_keeps_statistics_and_provenance(tmp_path):
    reference = make_reference()
    save_reference_npz(tmp_path / "ref.npz", reference)
    back = load_reference(tmp_path / "ref.npz", ["b", "a"])
    assert (back.protocol, back.embedder) == ("standard", "vggish-0123") and "ref.npz" in back.source
    for c in "ab":
        np.testing.assert_array_equal(back.stats[c].sigma, reference.stats[c].sigma)
        assert back.stats[c].count == reference.stats[c].count
    np.savez(tmp_path / "bare.npz", a_mu=np.zeros(2), a_sigma=np.eye(2))
    assert load_reference_npz(tmp_path / "bare.npz", ["a"]).protocol == "unspecified"
    with pytest.raises(DataError, match="for class\\(es\\) c"):
        load_reference(tmp_path / "ref.npz", ["a", "c"])


def test_folder_of_official_pickles_is_recognised(tmp_path):
    for i, c in enumerate(["x", "y"]):
        write_official_stats(tmp_path / c / OFFICIAL_FILE, random_stats(seed=i))
    reference = load_reference(tmp_path, ["x", "y"])
    assert reference.embedder == "vggish-tf-official" and set(reference.stats) == {"x", "y"}
    with pytest.raises(DataError, match="lacks gt_embedding.pkl for class\\(es\\) z"):
        load_reference(tmp_path, ["x", "z"])


def test_folder_of_clips_is_embedded_checked_and_cached(tmp_path):
    rng = np.random.default_rng(7)
    for c in ("x", "y"):
        (tmp_path / "clips" / c).mkdir(parents=True)
        for i in range(3):
            sf.write(tmp_path / "clips" / c / f"{i}.wav", rng.integers(-9000, 9000, 88200).astype(np.int16), 22050)
    with pytest.raises(FoleyError, match="needs an embedder"):
        load_reference(tmp_path / "clips", ["x", "y"])
    with pytest.raises(DataError, match="3 audio files, expected exactly 100"):
        load_reference(tmp_path / "clips", ["x", "y"], StatsEmbedder(), DCASE2023)
    embedder, options = StatsEmbedder(), EmbedOptions(cache_dir=tmp_path / "cache")
    reference = load_reference(tmp_path / "clips", ["x", "y"], embedder, DCASE2023, True, options)
    assert reference.stats["x"].count == 30 and reference.embedder == "stats" and embedder.calls == 2
    shutil.rmtree(tmp_path / "cache" / "embeddings")  # what follows comes from the statistics cache alone
    cached = load_reference(tmp_path / "clips", ["x", "y"], RefusingEmbedder(), DCASE2023, True, options)
    np.testing.assert_array_equal(cached.stats["y"].sigma, reference.stats["y"].sigma)


def test_only_statistics_made_the_same_way_are_compared():
    official = ReferenceStats({}, "dcase2023", "vggish-tf-official", "official")
    require_compatible(official, DCASE2023, StatsEmbedder("vggish-1a2b3c"))
    with pytest.raises(FoleyError, match="protocol dcase2023"):
        require_compatible(official, STANDARD, StatsEmbedder("vggish-1a2b3c"))
    with pytest.raises(FoleyError, match="embedder vggish-tf-official"):
        require_compatible(official, DCASE2023, StatsEmbedder("builtin"))
