"""The built-in synthetic Foley set: layout, format, determinism, distinct classes, errors."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from foley.audio.mel import log_mel
from foley.config import load_config
from foley.data.synth import DCASE_DEV_COUNTS, RECIPES, clip_seed, render_clip, write_synthetic_set
from foley.util.errors import DataError

CONFIG = load_config("base")
CLASS_NAMES = CONFIG.data.class_names
EVAL_NAMES = CONFIG.data.eval_class_names
SAMPLE_RATE = CONFIG.audio.sample_rate
NUM_SAMPLES = CONFIG.audio.clip_samples


def write_set(root: Path, per_class: int, seed: int = 7, classes: slice = slice(None)):
    return write_synthetic_set(
        root, CLASS_NAMES[classes], EVAL_NAMES[classes], per_class, per_class, seed, progress=False
    )


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.wav"))}


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    return write_set(tmp_path_factory.mktemp("synth"), per_class=2)


def test_recipes_cover_the_evaluation_classes():
    assert sorted(RECIPES) == sorted(EVAL_NAMES)


def test_layout_follows_dcase_development_and_evaluation_folders(tiny_set):
    for folder, names in ((tiny_set.dev_dir, CLASS_NAMES), (tiny_set.eval_dir, EVAL_NAMES)):
        assert sorted(p.name for p in folder.iterdir()) == sorted(names)
        for name in names:
            assert sorted(p.name for p in (folder / name).iterdir()) == ["0001.wav", "0002.wav"]


def test_every_clip_is_16_bit_mono_at_the_dcase_rate_and_length(tiny_set):
    paths = sorted(tiny_set.dev_dir.rglob("*.wav")) + sorted(tiny_set.eval_dir.rglob("*.wav"))
    assert len(paths) == 2 * 2 * len(CLASS_NAMES)
    for path in paths:
        info = sf.info(str(path))
        assert (info.format, info.subtype) == ("WAV", "PCM_16")
        assert (info.samplerate, info.channels, info.frames) == (SAMPLE_RATE, 1, NUM_SAMPLES)
        audio, _ = sf.read(str(path), dtype="float32")
        assert np.isfinite(audio).all() and np.abs(audio).max() <= 1.0
        assert np.abs(audio).max() > 0.25, f"{path} is near-silent"


CONTINUOUS_CLASSES = ("moving_motor_vehicle", "rain")


@pytest.mark.parametrize("class_key", sorted(RECIPES))
def test_recipe_levels_stay_in_range_and_event_clips_leave_quiet_stretches(class_key):
    for seed in range(3):
        audio = render_clip(class_key, seed, SAMPLE_RATE, NUM_SAMPLES)
        assert audio.dtype == np.float32 and audio.shape == (NUM_SAMPLES,)
        peak = np.abs(audio).max()
        assert 0.29 <= peak <= 0.91
        frame = SAMPLE_RATE // 50  # 20 ms
        frames = audio[: NUM_SAMPLES // frame * frame].reshape(-1, frame)
        quiet = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1)) < 0.01 * peak
        if class_key in CONTINUOUS_CLASSES:
            assert quiet.mean() < 0.25, "continuous sounds fill most of the clip"
        else:
            assert quiet.mean() > 0.2, "event sounds leave near-silence between events"


@pytest.mark.parametrize("sample_rate, num_samples", [(8000, 8000), (16000, 40000), (44100, 4410)])
def test_recipes_render_at_other_rates_and_lengths(sample_rate, num_samples):
    for key in RECIPES:
        audio = render_clip(key, 3, sample_rate, num_samples)
        assert audio.shape == (num_samples,) and np.isfinite(audio).all()
        assert 0.29 <= np.abs(audio).max() <= 0.91


def test_same_seed_writes_identical_bytes_and_rewriting_is_idempotent(tmp_path):
    first = write_set(tmp_path / "a", per_class=2, classes=slice(0, 3))
    second = write_set(tmp_path / "b", per_class=2, classes=slice(0, 3))
    before = folder_bytes(first.dev_dir.parent)
    assert before == folder_bytes(second.dev_dir.parent)
    write_set(tmp_path / "a", per_class=2, classes=slice(0, 3))
    assert folder_bytes(first.dev_dir.parent) == before


def test_different_seed_gives_different_audio(tmp_path):
    first = folder_bytes(write_set(tmp_path / "a", per_class=2, seed=7).dev_dir)
    second = folder_bytes(write_set(tmp_path / "b", per_class=2, seed=8).dev_dir)
    assert first.keys() == second.keys()
    assert all(first[name] != second[name] for name in first)


def test_a_clip_does_not_depend_on_how_many_clips_are_written(tmp_path):
    small = write_set(tmp_path / "two", per_class=2, classes=slice(4, 6))
    large = write_set(tmp_path / "three", per_class=3, classes=slice(4, 6))
    for name in CLASS_NAMES[4:6]:
        for clip in ("0001.wav", "0002.wav"):
            small_bytes = (small.dev_dir / name / clip).read_bytes()
            assert small_bytes == (large.dev_dir / name / clip).read_bytes()


def test_a_smaller_rewrite_removes_the_clips_it_no_longer_holds(tmp_path):
    synthetic = write_set(tmp_path, per_class=3, classes=slice(0, 2))
    (synthetic.dev_dir / CLASS_NAMES[0] / "notes.wav").write_bytes(b"kept")
    write_set(tmp_path, per_class=2, classes=slice(0, 2))
    names = sorted(p.name for p in (synthetic.dev_dir / CLASS_NAMES[0]).iterdir())
    assert names == ["0001.wav", "0002.wav", "notes.wav"]


def test_dev_and_eval_clips_differ(tiny_set):
    for dev_name, eval_name in zip(CLASS_NAMES, EVAL_NAMES):
        dev, _ = sf.read(str(tiny_set.dev_dir / dev_name / "0001.wav"))
        reference, _ = sf.read(str(tiny_set.eval_dir / eval_name / "0001.wav"))
        assert not np.array_equal(dev, reference)


def test_clip_seeds_are_distinct_across_splits_classes_and_indices():
    keys = list(itertools.product((0, 1), ("dev", "eval"), range(7), range(1, 6)))
    seeds = {clip_seed(*key) for key in keys}
    assert len(seeds) == len(keys)
    assert clip_seed(0, "dev", 3, 2) == clip_seed(0, "dev", 3, 2)


def clip_features(split: str, per_class: int, seed: int = 11) -> np.ndarray:
    """Per-clip mean and std over time of the log-mel: (classes, per_class, 2 * n_mels)."""
    clips = [
        render_clip(key, clip_seed(seed, split, c, i), SAMPLE_RATE, NUM_SAMPLES)
        for c, key in enumerate(EVAL_NAMES)
        for i in range(1, per_class + 1)
    ]
    mels = log_mel(torch.from_numpy(np.stack(clips)), CONFIG.mel, SAMPLE_RATE)
    features = torch.cat([mels.mean(dim=2), mels.std(dim=2)], dim=1).numpy()
    return features.reshape(len(EVAL_NAMES), per_class, -1)


@pytest.fixture(scope="module")
def dev_and_eval_features():
    return clip_features("dev", per_class=8), clip_features("eval", per_class=8)


def test_classes_are_told_apart_by_a_nearest_centroid_classifier(dev_and_eval_features):
    dev, held_out = dev_and_eval_features
    centroids = dev.mean(axis=1)
    queries = held_out.reshape(-1, held_out.shape[-1])
    distances = np.linalg.norm(queries[:, None, :] - centroids[None, :, :], axis=2)
    predicted = distances.argmin(axis=1)
    truth = np.repeat(np.arange(len(EVAL_NAMES)), held_out.shape[1])
    assert (predicted == truth).mean() >= 0.9


def test_clips_within_a_class_vary(dev_and_eval_features):
    dev, _ = dev_and_eval_features
    for name, features in zip(EVAL_NAMES, dev):
        pairwise = np.linalg.norm(features[:, None] - features[None, :], axis=2)
        off_diagonal = pairwise[~np.eye(len(features), dtype=bool)]
        assert off_diagonal.min() > 0.1, f"{name} clips are (nearly) identical"


def test_a_class_without_a_recipe_is_a_data_error_naming_it(tmp_path):
    with pytest.raises(DataError, match="helicopter"):
        write_synthetic_set(
            tmp_path, ["DogBark", "Helicopter"], ["dog_bark", "helicopter"], 2, 2, 0, progress=False
        )
    assert not any(tmp_path.iterdir()), "nothing is written before the classes are checked"


def test_render_clip_with_an_unknown_key_lists_the_recipes():
    with pytest.raises(DataError, match="'siren'.*dog_bark.*sneeze_cough"):
        render_clip("siren", 0, SAMPLE_RATE, NUM_SAMPLES)


def test_mismatched_class_name_lists_are_a_data_error(tmp_path):
    with pytest.raises(DataError, match="one eval name per class"):
        write_synthetic_set(tmp_path, CLASS_NAMES, EVAL_NAMES[:3], 2, 2, 0, progress=False)


def test_an_unusable_rate_or_length_is_a_data_error():
    with pytest.raises(DataError, match="4000 Hz"):
        render_clip("rain", 0, 4000, NUM_SAMPLES)
    with pytest.raises(DataError, match="0 samples"):
        render_clip("rain", 0, SAMPLE_RATE, 0)


def test_counts_per_class_give_each_class_its_own_size(tmp_path):
    counts = (1, 2, 1, 1, 1, 1, 2)
    written = write_synthetic_set(tmp_path / "s", CLASS_NAMES, EVAL_NAMES, counts, 1, seed=7, sample_rate=8000,
                                  num_samples=800, progress=False)
    assert [len(list((written.dev_dir / name).iterdir())) for name in CLASS_NAMES] == list(counts)
    assert [len(list((written.eval_dir / name).iterdir())) for name in EVAL_NAMES] == [1] * 7
    with pytest.raises(DataError, match="2 clip counts for 7 classes"):
        write_synthetic_set(tmp_path / "t", CLASS_NAMES, EVAL_NAMES, (1, 2), 1, seed=7, progress=False)
    assert sum(DCASE_DEV_COUNTS) == 4850
