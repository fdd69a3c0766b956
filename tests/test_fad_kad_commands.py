"""`foley fad` with KAD and saved embeddings, builtin under standard and PANNs under dcase2024 (a checkpoint
saved from random weights), as the issue's two command lines run them; saved embeddings re-score to the
same numbers, alone and as a reference."""

import csv

import numpy as np
import pytest
import soundfile as sf
import torch
from test_eval_commands import write_clip_set

from foley.audio.resampling import kaiser_best
from foley.evaluate.fad import gaussian_stats
from foley.evaluate.kad import class_kad
from foley.evaluate.protocols import DCASE2024, STANDARD, ClipArray, pcm16_round_trip, read_samples
from foley.evaluate.reference import reference_from_saved, save_reference_npz
from foley.evaluate.saved import STATS_FILE, load_embeddings
from foley.evaluate.scores import ExtraStatistics, score_set
from foley.models.panns import WEIGHTS_FILE, PannsEmbedder
from foley.stages.commands.cli import main

CLASSES = ["dog_bark", "footstep", "gunshot", "keyboard", "moving_motor_vehicle", "rain", "sneeze_cough"]


@pytest.fixture(scope="module")
def clip_sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    return write_clip_set(root / "generated", 1), write_clip_set(root / "reference", 2)


def fork_loading(path, rate):
    """The DCASE 2024 fork's loading, written out: float32 samples, channels averaged, fadtk's resampler,
    16-bit PCM written (x * 32768, rounded, clipped) and read back / 32768."""
    samples, original = sf.read(path, dtype="float32", always_2d=True)
    resampled = kaiser_best(samples.mean(axis=1), original, rate)
    return np.clip(np.round(resampled * 32768), -32768, 32767) / 32768


def test_dcase2024_reads_as_the_fork_stores_its_clips(tmp_path):
    embedder = PannsEmbedder  # its rate and framing are class attributes: no weights needed
    framing = DCASE2024.framing(embedder)
    assert (framing.sample_rate, framing.window, framing.pcm16_round_trip) == (32000, 0, True)
    assert framing.key != STANDARD.framing(embedder).key
    rng = np.random.default_rng(0)
    values = rng.integers(-32768, 32768, size=3000).astype(np.int16)
    sf.write(tmp_path / "a.wav", values, 32000, subtype="PCM_16")
    np.testing.assert_array_equal(read_samples(tmp_path / "a.wav", framing), values / 32768.0)  # unchanged
    stereo = (rng.uniform(-0.6, 0.6, (4410, 2)) * 32767).astype(np.int16)
    sf.write(tmp_path / "b.flac", stereo, 44100, subtype="PCM_16", format="FLAC")
    ours = read_samples(tmp_path / "b.flac", framing)
    expected = fork_loading(tmp_path / "b.flac", 32000)
    assert ours.shape == expected.shape == (3200,) and np.abs(ours - expected).max() <= 1 / 32768
    assert np.mean(ours != expected) < 0.01  # float32 (fork) and float64 channel means round alike but for ties
    np.testing.assert_array_equal(pcm16_round_trip(np.array([1.5, -2.0, 0.25, 0.9 / 65536])),
                                  [32767 / 32768, -1.0, 0.25, 0.0])
    as_array = read_samples(ClipArray(stereo, 44100), framing)
    np.testing.assert_array_equal(as_array, ours)  # an in-memory clip reads as its file


def fad(generated, reference, *extra):
    return main(["fad", str(generated), "--reference", str(reference), "--relax-checks", "-q", *extra])


def rows_of(path):
    return list(csv.DictReader(open(path)))


def test_builtin_fad_and_kad_with_saved_embeddings_rescore_to_the_same_numbers(clip_sets, tmp_path, capsys):
    generated, reference = clip_sets
    saved_dir, out = tmp_path / "emb", tmp_path / "fad.csv"
    args = ("--embedder", "builtin", "--protocol", "standard", "--metric", "fad,kad")
    assert fad(generated, reference, *args, "--save-embeddings", str(saved_dir), "--out", str(out)) == 0
    assert "KAD" in capsys.readouterr().out
    rows = rows_of(out)
    assert [r["class"] for r in rows] == CLASSES + ["mean"] and all(r["fad"] and r["kad"] for r in rows)
    assert rows[0]["kad_bandwidth_from"] == "reference" and rows[0]["dim"] == "64"
    saved = load_embeddings(saved_dir, CLASSES)
    first = np.load(saved_dir / "dog_bark" / "generated.npy")
    assert first.dtype == np.float32 and first.shape == (int(rows[0]["n_generated"]), 64)
    assert saved.reference["dog_bark"].shape == (int(rows[0]["n_reference"]), 64)
    assert saved.source.embedder == "builtin-mfcc-v1" and saved.generated_names["rain"] == ["0001.wav", "0002.wav"]
    for c, name in enumerate(CLASSES):
        kad = class_kad(saved.reference[name].astype(np.float64), saved.generated[name])
        assert float(rows[c]["kad"]) == pytest.approx(kad.kad, abs=2e-6)
    stats = {n: gaussian_stats(saved.reference[n].astype(np.float64)) for n in CLASSES}
    again = score_set(CLASSES, saved.generated, stats, ExtraStatistics(metrics=("fad", "kad")), False, saved.reference)
    np.testing.assert_allclose([float(r["fad"]) for r in rows[:-1]], again.scores.fad, rtol=1e-6, atol=2e-6)
    np.testing.assert_allclose([float(r["kad"]) for r in rows[:-1]], [k.kad for k in again.kad], atol=2e-6)

    assert fad(generated, saved_dir, *args, "--out", str(tmp_path / "from_saved.csv")) == 0
    from_saved = rows_of(tmp_path / "from_saved.csv")
    for ours, theirs in zip(rows, from_saved):
        assert (ours["fad"], ours["kad"], ours["reference_id"]) == (theirs["fad"], theirs["kad"], theirs["reference_id"])
    assert from_saved[0]["reference"].startswith(f"saved embeddings in {saved_dir}")


def test_kad_against_statistics_only_is_refused_and_bad_metrics_are_named(clip_sets, tmp_path, capsys):
    generated, reference = clip_sets
    assert fad(generated, reference, "--embedder", "builtin", "--protocol", "standard", "--save-embeddings",
               str(tmp_path / "e")) == 0
    assert not (tmp_path / "e" / STATS_FILE).exists()  # the reference's embeddings are saved, not its statistics
    save_reference_npz(tmp_path / "stats.npz", reference_from_saved(tmp_path / "e", CLASSES))
    assert fad(generated, tmp_path / "stats.npz", "--embedder", "builtin", "--protocol", "standard") == 0
    assert fad(generated, tmp_path / "stats.npz", "--embedder", "builtin", "--protocol", "standard", "--metric", "kad",
               "--save-embeddings", str(tmp_path / "stats-only")) == 2
    assert "holds statistics only" in capsys.readouterr().err
    assert fad(generated, tmp_path / "stats.npz", "--embedder", "builtin", "--protocol", "standard", "--save-embeddings",
               str(tmp_path / "stats-only"), "--out", str(tmp_path / "a.csv")) == 0
    assert (tmp_path / "stats-only" / STATS_FILE).is_file() and not (tmp_path / "stats-only" / "rain" / "reference.npy").exists()
    assert fad(generated, tmp_path / "stats-only", "--embedder", "builtin", "--protocol", "standard", "--out",
               str(tmp_path / "b.csv")) == 0
    assert [r["fad"] for r in rows_of(tmp_path / "a.csv")] == [r["fad"] for r in rows_of(tmp_path / "b.csv")]
    assert fad(generated, reference, "--embedder", "builtin", "--protocol", "standard", "--metric", "fad,fid") == 2
    assert "--metric takes fad, kad" in capsys.readouterr().err


@pytest.fixture(scope="module")
def panns_checkpoint(tmp_path_factory):
    """A checkpoint in the official layout ({'model': state_dict}) saved from random weights."""
    path = tmp_path_factory.mktemp("panns") / WEIGHTS_FILE
    torch.save({"model": PannsEmbedder.random(seed=3).model.state_dict()}, path)
    return path


@pytest.mark.slow
def test_panns_under_dcase2024_embeds_each_whole_clip_as_the_fork_loads_it(tmp_path, panns_checkpoint, capsys,
                                                                           one_torch_thread):
    generated, reference = write_clip_set(tmp_path / "gen", 5), write_clip_set(tmp_path / "ref", 6)
    out, saved_dir = tmp_path / "fad.csv", tmp_path / "emb"
    two = "dog_bark,rain"
    assert fad(generated, reference, "--embedder", "panns-wglm", "--protocol", "dcase2024", "--panns-weights",
               str(panns_checkpoint), "--metric", "fad,kad", "--save-embeddings", str(saved_dir), "--out", str(out),
               "--classes", two) == 0
    printed = capsys.readouterr().out
    assert "caution: 2 clips per class for 2048-d embeddings" in printed
    rows = rows_of(out)
    assert rows[0]["embedder"].startswith("panns-wglm-") and rows[0]["protocol"] == "dcase2024"
    assert (rows[0]["clips"], rows[0]["n_generated"], rows[0]["dim"]) == ("2", "2", "2048")  # one embedding per clip
    embedder = PannsEmbedder.load(panns_checkpoint)
    clip = fork_loading(generated / "rain" / "0002.wav", 32000)
    assert clip.size == 64000  # 2 s at 22,050 Hz -> 32 kHz
    alone = embedder.embed(torch.from_numpy(clip)[None]).numpy()[0]
    saved = np.load(saved_dir / "rain" / "generated.npy")
    np.testing.assert_allclose(saved[1], alone, rtol=1e-5, atol=1e-5 * np.abs(alone).max())


@pytest.mark.slow
def test_bench_fad_times_panns_on_whole_clips_with_random_weights(capsys, one_torch_thread):
    assert main(["bench", "fad", "--embedder", "panns-wglm", "--batch-sizes", "1", "--repeats", "1", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "panns-wglm-random-weights (random weights" in printed and "protocol dcase2024 (1 embeddings per 4 s clip)" in printed
    assert "batch    1:" in printed
