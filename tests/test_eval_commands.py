"""`foley fad` and `foley bench fad` through the command line on tiny clip sets, and the missing-weights message."""

import csv
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from test_vggish import TORCHVGGISH_SHAPES

from foley.config import load_config
from foley.evaluate.builtin_embedder import BuiltinEmbedder
from foley.evaluate.embedding import EmbedOptions, embed_clips
from foley.evaluate.fad import frechet_distance, gaussian_stats
from foley.evaluate.gt_pickle import read_official_stats, write_official_stats
from foley.evaluate.protocols import DCASE2023, class_files
from foley.evaluate.reference import OFFICIAL_FILE, reference_from_folder, save_reference_npz
from foley.models.vggish import VGGishEmbedder
from foley.registry import EMBEDDERS
from foley.stages.commands.cli import main
from foley.util.errors import ConfigError

VGGISH_WEIGHTS = EMBEDDERS.entry("vggish").weights
WEIGHTS_FILE, WEIGHTS_URL = VGGISH_WEIGHTS.file, VGGISH_WEIGHTS.source

CLASSES = ["dog_bark", "footstep", "gunshot", "keyboard", "moving_motor_vehicle", "rain", "sneeze_cough"]
RATE, SECONDS, CLIPS = 22050, 2, 2  # a 2 s clip gives 4 dcase2023 windows


def write_clip_set(root, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(RATE * SECONDS) / RATE
    for c, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(CLIPS):
            tone = np.sin(2 * np.pi * (150 + 400 * c) * t) * (0.2 + 0.1 * i)
            clip = tone + rng.normal(0, 0.02 + 0.03 * c, t.size)
            sf.write(str(root / name / f"{i + 1:04d}.wav"), clip, RATE, subtype="PCM_16")
    return root


@pytest.fixture(scope="module")
def clip_sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    return write_clip_set(root / "generated", 1), write_clip_set(root / "reference", 2)


def fad_command(generated, reference, *extra):
    return main(["fad", str(generated), "--reference", str(reference), "--protocol", "dcase2023", "-q", *extra])


def read_rows(path):
    return list(csv.DictReader(open(path)))


def independent_fads(generated, reference_stats, embedder, options=EmbedOptions(), classes=CLASSES):
    files = class_files(generated, classes)
    pooled = {c: np.concatenate(embed_clips(files[c], embedder, DCASE2023, options)) for c in classes}
    return [frechet_distance(reference_stats[c], gaussian_stats(pooled[c]))
            for c in classes]


def test_fad_builtin_against_a_folder_and_against_its_npz(clip_sets, tmp_path, capsys):
    generated, reference = clip_sets
    assert fad_command(generated, reference, "--embedder", "builtin", "--relax-checks", "--out", str(tmp_path / "a.csv")) == 0
    printed = capsys.readouterr().out
    assert "builtin-mfcc-v1" in printed and "protocol dcase2023" in printed and str(reference) in printed
    assert all(name in printed for name in CLASSES + ["mean"])
    rows = read_rows(tmp_path / "a.csv")
    assert [r["class"] for r in rows] == CLASSES + ["mean"]
    assert {(r["embedder"], r["protocol"], r["clips"]) for r in rows[:-1]} == {("builtin-mfcc-v1", "dcase2023", "2")}
    assert rows[0]["n_generated"] == "8" and rows[0]["reference_id"]
    stats = reference_from_folder(reference, CLASSES, BuiltinEmbedder(), DCASE2023, relax_checks=True)
    expected = independent_fads(generated, stats.stats, BuiltinEmbedder())
    np.testing.assert_allclose([float(r["fad"]) for r in rows[:-1]], expected, rtol=1e-6, atol=1e-6)
    assert float(rows[-1]["fad"]) == pytest.approx(np.mean(expected), rel=1e-6)

    save_reference_npz(tmp_path / "ref.npz", stats)
    args = ["--embedder", "builtin", "--relax-checks", "--out", str(tmp_path / "b.csv")]
    assert fad_command(generated, tmp_path / "ref.npz", *args) == 0
    from_npz = read_rows(tmp_path / "b.csv")
    assert [r["fad"] for r in from_npz] == [r["fad"] for r in rows] and "ref.npz" in from_npz[0]["reference"]


def test_fad_refuses_unofficial_inputs_unless_relaxed(clip_sets, capsys):
    generated, reference = clip_sets
    assert fad_command(generated, reference, "--embedder", "builtin") == 2
    err = capsys.readouterr().err
    assert "2 audio files, expected exactly 100" in err and "44100 samples, expected 88200" in err and "--relax-checks" in err



def write_short_clips(root, seconds=0.3):
    """Two classes of clips shorter than one dcase2023 window (16,000 samples), as key clicks are."""
    rng = np.random.default_rng(0)
    for name in ("footstep", "keyboard"):
        (root / name).mkdir(parents=True)
        for i in range(3):
            sf.write(str(root / name / f"{i + 1:04d}.wav"), rng.normal(0, 0.1, int(RATE * seconds)), RATE, subtype="PCM_16")
    return root


@pytest.mark.parametrize("short", ["reference", "generated"])
def test_fad_names_a_class_whose_clips_are_too_short_for_a_window(clip_sets, tmp_path, capsys, short):
    generated, reference = clip_sets
    folders = {"generated": generated, "reference": reference, short: write_short_clips(tmp_path / short)}
    args = ["--embedder", "builtin", "--relax-checks", "--classes", "footstep,keyboard", "--out", str(tmp_path / "f.csv")]
    assert fad_command(folders["generated"], folders["reference"], *args) == 2
    err = capsys.readouterr().err
    assert f"class 'footstep' ({tmp_path / short / 'footstep'}): its 3 clip(s) give 0 embedding window(s)" in err
    assert "shorter than one window (16,000 samples)" in err and "--protocol standard" in err
    assert "Traceback" not in err and not (tmp_path / "f.csv").exists()
    standard = ["--protocol", "standard", *args]  # zero-pads a short clip to one window
    assert main(["fad", str(folders["generated"]), "--reference", str(folders["reference"]), "-q", *standard]) == 0
    assert [r["class"] for r in read_rows(tmp_path / "f.csv")] == ["footstep", "keyboard", "mean"]


def test_fad_vggish_on_three_classes_against_official_pickles_written_here(clip_sets, tmp_path, capsys):
    generated, reference = clip_sets
    classes = CLASSES[:3]
    torch.manual_seed(0)
    weights = tmp_path / WEIGHTS_FILE
    torch.save({name: torch.randn(shape) * 0.05 for name, shape in TORCHVGGISH_SHAPES.items()}, weights)
    embedder = VGGishEmbedder.load(weights)
    options = EmbedOptions(batch_size=64, cache_dir=tmp_path / "cache")
    stats = reference_from_folder(reference, classes, embedder, DCASE2023, relax_checks=True, options=options)
    for name in classes:
        write_official_stats(tmp_path / "gt" / name / OFFICIAL_FILE, stats.stats[name])
    args = ["--embedder", "vggish", "--vggish-weights", str(weights), "--relax-checks", "--cache", str(tmp_path / "cache"),
            "--classes", ",".join(classes)]
    assert fad_command(generated, tmp_path / "gt", *args, "--out", str(tmp_path / "gt.csv")) == 0
    assert f"official {OFFICIAL_FILE} files" in capsys.readouterr().out
    rows = read_rows(tmp_path / "gt.csv")
    assert [r["class"] for r in rows] == classes + ["mean"]
    assert rows[0]["embedder"] == embedder.name and rows[0]["n_reference"] == "8"
    official = {name: read_official_stats(tmp_path / "gt" / name / OFFICIAL_FILE) for name in classes}
    expected = independent_fads(generated, official, embedder, options, classes)
    np.testing.assert_allclose([float(r["fad"]) for r in rows[:-1]], expected, rtol=1e-6, atol=1e-6)

    assert fad_command(generated, tmp_path / "gt", "--embedder", "builtin", "--relax-checks", "--classes", ",".join(classes)) == 2
    assert "cannot be compared" in capsys.readouterr().err


def test_missing_weights_give_the_one_message_everywhere(clip_sets, tmp_path, capsys):
    generated, reference = clip_sets
    assert fad_command(generated, reference, "--embedder", "vggish") == 2
    err = capsys.readouterr().err
    assert "no vggish weights were given" in err and WEIGHTS_FILE in err and WEIGHTS_URL in err and "--vggish-weights" in err
    assert fad_command(generated, reference, "--embedder", "vggish", "--vggish-weights", str(tmp_path / "nope.pth")) == 2
    assert f"not found at '{tmp_path / 'nope.pth'}'" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="evaluate.weights.vggish' is null: no vggish weights were given"):
        load_config("quick", ["evaluate.embedder=vggish"])

    run = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "foley", "run", "--out", str(run), "--set", "evaluate.embedder=vggish",
         "--set", f"evaluate.weights.vggish={tmp_path / 'nope.pth'}"], capture_output=True, text=True)
    assert proc.returncode == 2 and WEIGHTS_URL in proc.stderr and "not found at" in proc.stderr
    assert not (run / "prepare").exists(), "refused before any stage ran"


def test_bench_fad_prints_embeddings_per_second(capsys):
    assert main(["bench", "fad", "--embedder", "builtin", "--batch-sizes", "2", "--repeats", "1", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "builtin-mfcc-v1" in printed and "10 embeddings per 4 s clip" in printed and "embeddings/s" in printed
    assert main(["bench", "fad", "--batch-sizes", "1", "--repeats", "1", "--protocol", "standard", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "random weights" in printed and "4 embeddings per 4 s clip" in printed
    assert main(["bench", "fad", "--batch-sizes", "0"]) == 2
