"""Scoring clip sets (extras and the optional cross-class matrix), the floors' audio paths, reference
content ids, the comparison table's inputs and the evaluate config's checks."""

import csv

import numpy as np
import pytest
import soundfile as sf
import torch

from foley.config import load_config
from foley.evaluate.fad import bootstrap_scores, fad_inf, frechet_distance, gaussian_stats, percentile_interval
from foley.evaluate.floors import floor_audio
from foley.evaluate.reference import reference_digest
from foley.evaluate.scores import ExtraStatistics, score_set
from foley.evaluate.tables import FAD_FIELDS
from foley.models.builders import build_autoencoder
from foley.stages.compare_scores import comparable_groups, read_run_scores, run_labels
from foley.util.errors import ConfigError, RunError


def clip_sets(seed, classes=("a", "b", "c"), clips=6, windows=4, dim=3):
    rng = np.random.default_rng(seed)
    return {name: [rng.standard_normal((windows, dim)) * (1 + c) + c for _ in range(clips)] for c, name in enumerate(classes)}


def test_set_scores_and_extras_match_the_pure_functions():
    generated, real = clip_sets(0), clip_sets(1, clips=20)
    reference = {n: gaussian_stats(np.concatenate(v)) for n, v in real.items()}
    extras = ExtraStatistics(fad_inf=True, bootstrap=30, confidence=0.9, seed=7)
    result = score_set("abc", generated, reference, extras)
    for c, name in enumerate("abc"):
        pooled = np.concatenate(generated[name])
        assert result.scores.fad[c] == frechet_distance(reference[name], gaussian_stats(pooled))
        assert result.scores.matrix[c, (c + 1) % 3] == frechet_distance(reference["abc"[(c + 1) % 3]], gaussian_stats(pooled))
        assert result.fad_inf[c] == fad_inf(pooled, reference[name], seed=7 + c)
        resampled = bootstrap_scores(generated[name], reference[name], 7 + c, 30)
        assert result.intervals[c] == percentile_interval(result.scores.fad[c], resampled, 0.9)
    resampled = np.mean([bootstrap_scores(generated[n], reference[n], 7 + c, 30) for c, n in enumerate("abc")], axis=0)
    assert result.mean_interval.fad == pytest.approx(result.scores.fad.mean())
    assert (result.mean_interval.low, result.mean_interval.high) == pytest.approx(tuple(np.percentile(resampled, [5, 95])))
    assert result.clips == (6, 6, 6) and result.scores.n_generated == (24, 24, 24)
    assert result.mean_fad_inf == pytest.approx(np.mean([f.score for f in result.fad_inf]))

    plain = score_set("abc", generated, reference, cross_class=False)
    np.testing.assert_array_equal(plain.scores.fad, result.scores.fad)
    assert np.isnan(plain.scores.matrix[0, 1]) and plain.intervals is None and plain.fad_inf is None
    with pytest.raises(ValueError, match="cross-class distances were not computed"):
        plain.scores.separated()


def test_floor_audio_is_the_vocoder_on_real_and_on_reconstructed_mels():
    config = load_config("quick", ["autoencoder.channel=8", "autoencoder.embed_dim=4", "autoencoder.n_res_channel=4"])
    torch.manual_seed(0)
    autoencoder = build_autoencoder(config.autoencoder, (80, 344)).eval()
    mels = torch.randn(3, 80, 344) - 4

    def vocoder(batch):  # any mel -> wave map will do; it must see exactly the mels the floor defines
        return torch.repeat_interleave(batch.mean(1), 256, dim=-1) / 100

    args = (autoencoder, vocoder, 2, 88000, torch.device("cpu"))
    np.testing.assert_allclose(floor_audio("vocoder", mels, *args), vocoder(mels)[:, :88000].numpy(), rtol=1e-6)
    with torch.no_grad():
        rebuilt = autoencoder.decode_codes(autoencoder.encode(mels).codes)
    audio = floor_audio("reconstruction", mels, *args)
    assert audio.shape == (3, 88000) and audio.dtype == np.float32
    np.testing.assert_allclose(audio, vocoder(rebuilt)[:, :88000].numpy(), rtol=1e-5, atol=1e-6)
    assert floor_audio("vocoder", mels, autoencoder, vocoder, 2, 90000, torch.device("cpu"))[:, 88064:].max() == 0
    with pytest.raises(ValueError, match="floors are vocoder, reconstruction"):
        floor_audio("prior", mels, *args)


def test_reference_id_follows_content_not_location(tmp_path):
    rng = np.random.default_rng(0)
    clip = rng.uniform(-0.5, 0.5, 22050)
    for folder in ("one", "two"):
        for name in ("x", "y"):
            (tmp_path / folder / name).mkdir(parents=True)
            sf.write(str(tmp_path / folder / name / "1.wav"), clip, 22050, subtype="PCM_16")
    assert reference_digest(tmp_path / "one", ["x", "y"]) == reference_digest(tmp_path / "two", ["x", "y"])
    sf.write(str(tmp_path / "two" / "y" / "1.wav"), -clip, 22050, subtype="PCM_16")
    assert reference_digest(tmp_path / "one", ["x", "y"]) != reference_digest(tmp_path / "two", ["x", "y"])
    assert reference_digest(tmp_path / "one", ["x"]) != reference_digest(tmp_path / "one", ["x", "y"])


def write_fad_csv(path, embedder="builtin-mfcc-v1", columns=FAD_FIELDS):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for name, fad in (("a", 1.0), ("b", 3.0), ("mean", 2.0)):
            writer.writerow({"class": name, "fad": fad, "clips": 4, "embedder": embedder, "protocol": "dcase2023",
                             "reference": "clips in r", "reference_id": "abc"})


def test_compare_inputs_labels_and_scales(tmp_path):
    write_fad_csv(tmp_path / "x" / "run" / "evaluate" / "fad.csv")
    write_fad_csv(tmp_path / "y" / "run" / "evaluate" / "fad.csv", embedder="vggish-0123")
    write_fad_csv(tmp_path / "old.csv", columns=("class", "fad", "embedder", "protocol"))
    sources = [tmp_path / "x" / "run", tmp_path / "y" / "run" / "evaluate" / "fad.csv"]
    assert run_labels(sources, None) == [str(s) for s in sources]  # both named "run": paths tell them apart
    with pytest.raises(RunError, match="2 different names"):
        run_labels(sources, ["same", "same"])
    runs = [read_run_scores(s, label) for s, label in zip(sources, ["x", "y"])]
    fad = runs[0].series[("builtin-mfcc-v1", "fad")]
    assert list(runs[0].series) == [("builtin-mfcc-v1", "fad")]  # no KAD values: no KAD series
    assert fad.classes == ("a", "b", "average") and fad.value == (1.0, 3.0, 2.0) and fad.low == (None,) * 3
    with pytest.raises(RunError, match="x: embedder.s. builtin-mfcc-v1.*\n  y: embedder.s. vggish-0123"):
        comparable_groups(runs)
    with pytest.raises(RunError, match="missing: reference_id"):
        read_run_scores(tmp_path / "old.csv", "old")
    with pytest.raises(RunError, match="has no FAD table"):
        read_run_scores(tmp_path / "nowhere", "none")


@pytest.mark.parametrize(
    "override, message",
    [
        ("evaluate.bootstrap=1", r"0 \(off\) or at least 2"),
        ("evaluate.floor_clips_per_class=-1", "floor_clips_per_class"),
        ("evaluate.embedder=clap", "must be one of builtin, vggish, panns-wglm"),
        ("evaluate.embedders=[builtin, clap]", "evaluate.embedders.*must be one of builtin"),
        ("evaluate.metrics=[fad, fid]", "evaluate.metrics.*must be one of fad, kad"),
        ("evaluate.kad_bandwidth=median", "must be one of reference, generated"),
        ("evaluate.embedders=[builtin, panns-wglm]", "weights.panns-wglm' is null.*Wavegram_Logmel_Cnn14"),
        ("evaluate.refrence=x.npz", "did you mean 'evaluate.reference'"),
    ],
)
def test_bad_evaluate_values_fail_with_the_key_named(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config("quick", [override])


def test_a_missing_reference_is_refused_before_any_stage_runs(tmp_path, capsys):
    from foley.stages.commands.cli import main

    assert main(["run", "--out", str(tmp_path / "run"), "-q", "--set", f"evaluate.reference={tmp_path / 'nope.npz'}"]) == 2
    assert "evaluate.reference': '" in capsys.readouterr().err and not (tmp_path / "run" / "prepare").exists()
