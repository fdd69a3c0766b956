"""The class-accuracy classifier: it learns separable classes, finds nothing in labels that carry no
information, is deterministic and cached by content; the confusion matrix and its accuracies."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from foley.evaluate.classifier import (
    ClassifierSettings,
    cached_classifier,
    class_accuracy,
    classifier_key,
    predict,
    train_classifier,
    training_epochs,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = ClassifierSettings(epochs=15, batch_size=16, pool=(1, 2), widths=(8, 8, 8))
NAMES = ("a", "b", "c", "d")


def clips(bands: np.ndarray, seed: int, mels: int = 16, frames: int = 48) -> np.ndarray:
    """Log-mel-like noise with one bright 3-bin x 8-frame patch per clip, at band bands[i], anywhere in time."""
    rng = np.random.default_rng(seed)
    x = rng.normal(-5.0, 1.0, (len(bands), mels, frames)).astype(np.float32)
    for i, band in enumerate(bands):
        start = rng.integers(0, frames - 8)
        x[i, band : band + 3, start : start + 8] += 4.0
    return x


def test_separable_classes_are_learned():
    train_labels, test_labels = np.repeat(np.arange(4), 30), np.repeat(np.arange(4), 20)
    model = train_classifier(clips(4 * train_labels, 0), train_labels, 4, SMALL)
    result = class_accuracy(test_labels, predict(model, clips(4 * test_labels, 1)), NAMES)
    assert result.mean >= 0.95 and (result.per_class >= 0.9).all()
    assert result.confusion.sum() == 80 and (result.clips == 20).all()


def test_labels_that_carry_no_information_give_chance_accuracy():
    rng = np.random.default_rng(2)
    train_bands, test_bands = rng.integers(0, 13, 120), rng.integers(0, 13, 400)
    shuffled_train = rng.permutation(np.repeat(np.arange(4), 30))
    shuffled_test = rng.permutation(np.repeat(np.arange(4), 100))
    model = train_classifier(clips(train_bands, 3), shuffled_train, 4, SMALL)
    result = class_accuracy(shuffled_test, predict(model, clips(test_bands, 4)), NAMES)
    chance, spread = 0.25, 3 * np.sqrt(0.25 * 0.75 / 400)  # three standard deviations of 400 guesses
    assert abs(result.mean - chance) < spread + 0.02


def test_training_is_deterministic_and_leaves_the_global_rng_alone():
    labels = np.repeat(np.arange(4), 4)
    mels = clips(4 * labels, 5)
    settings = ClassifierSettings(epochs=2, batch_size=8, pool=(1, 2), widths=(4, 4, 4))
    state = torch.get_rng_state()
    first = train_classifier(mels, labels, 4, settings)
    assert torch.equal(torch.get_rng_state(), state)
    second = train_classifier(mels, labels, 4, settings)
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)


def test_the_cache_is_keyed_by_content_and_settings(tmp_path):
    labels = np.repeat(np.arange(4), 4)
    mels = clips(4 * labels, 6)
    settings = ClassifierSettings(epochs=1, batch_size=8, pool=(1, 2), widths=(4, 4, 4))
    model, key = cached_classifier(tmp_path, mels, labels, 4, settings)
    assert len(list((tmp_path / "classifiers").iterdir())) == 1
    again, same_key = cached_classifier(tmp_path, mels.copy(), labels, 4, settings)
    assert same_key == key
    assert np.array_equal(predict(again, mels), predict(model, mels))
    other = mels.copy()
    other[0, 0, 0] += 1.0
    assert classifier_key(other, labels, 4, settings) != key
    assert classifier_key(mels, labels[::-1].copy(), 4, settings) != key
    assert classifier_key(mels, labels, 4, ClassifierSettings(epochs=2, batch_size=8, pool=(1, 2), widths=(4, 4, 4))) != key


def test_confusion_matrix_and_balanced_accuracy():
    true = np.array([0, 0, 0, 0, 1, 1, 2])
    predicted = np.array([0, 0, 0, 1, 1, 0, 2])
    result = class_accuracy(true, predicted, ("x", "y", "z", "w"))
    assert result.confusion.tolist() == [[3, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    assert np.allclose(result.per_class[:3], [0.75, 0.5, 1.0]) and np.isnan(result.per_class[3])
    assert result.mean == pytest.approx((0.75 + 0.5 + 1.0) / 3)


def test_bad_training_sets_are_refused():
    with pytest.raises(ValueError, match="labels must lie in"):
        train_classifier(np.zeros((4, 8, 8)), np.array([0, 1, 2, 5]), 4, SMALL)
    with pytest.raises(ValueError, match="one label each"):
        train_classifier(np.zeros((4, 8, 8)), np.array([0, 1]), 4, SMALL)


def test_a_small_set_trains_more_epochs_up_to_the_minimum_steps():
    assert training_epochs(1400, 32, 10, 400) == 10  # the demo's 1,400 clips: 44 steps an epoch, 440 steps
    assert training_epochs(334, 32, 10, 400) == 37  # 334 real clips: 11 steps an epoch, 37 epochs reach 400
    assert training_epochs(334, 32, 10, 0) == 10 and training_epochs(334, 32, 0, 400) == 0
    for clips in (1, 31, 32, 33, 100, 999):
        epochs, per_epoch = training_epochs(clips, 32, 3, 250), -(-clips // 32)
        assert epochs >= 3 and epochs * per_epoch >= 250
        assert epochs == 3 or (epochs - 1) * per_epoch < 250  # whole epochs, no more than needed
