"""`foley run --seeds`: one run folder per seed (each the run --set seed=N makes), a shared cache, the
summary equal to the runs' own figures; `foley compare` takes the group as one column. The toy runs
train with label dropout and sample with guidance, so classifier-free guidance runs end to end."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from foley.stages.commands.cli import main
from foley.stages.seeds import parse_seeds
from foley.util.errors import RunError

CLASSES = ["dog_bark", "footstep", "gunshot", "keyboard", "moving_motor_vehicle", "rain", "sneeze_cough"]
GUIDED = ["prior.label_dropout=0.2", "sample.guidance=2.0", "sample.best_of=2"]


def _sets(overrides):
    return [item for o in overrides for item in ("--set", o)]


@pytest.fixture(scope="module")
def group(tmp_path_factory):
    from conftest import TOY

    out = tmp_path_factory.mktemp("seeds") / "group"
    assert main(["run", "--quiet", "--seeds", "0,3", "--out", str(out), *_sets(TOY + GUIDED)]) == 0
    return out


def _rows(path):
    return list(csv.DictReader(open(path)))


def test_each_seed_is_its_own_run_with_guidance(group):
    record = json.loads((group / "seeds.json").read_text())
    assert record["seeds"] == [0, 3] and record["runs"] == ["seed0", "seed3"] and "--seeds 0,3" in record["command"]
    for seed in (0, 3):
        config = (group / f"seed{seed}" / "config.yaml").read_text()
        assert f"seed: {seed}\n" in config and "label_dropout: 0.2" in config and "guidance: 2.0" in config
        manifest = json.loads((group / f"seed{seed}" / "sample" / "manifest.json").read_text())
        assert manifest["details"]["guidance"] == 2.0 and manifest["details"]["best_of"] == 2
        details = manifest["details"]
        assert sum(details["kept_candidate_counts"]) == 2 * len(CLASSES)  # 2 clips per class
        assert details["best_of_by"] == "loudness"  # the demo's rule (quick.yaml), whose kept clips misfit no more
        assert details["outside_range_kept"] <= details["outside_range_first"]
        assert details["misfit_mean_kept"] <= details["misfit_mean_first"]
    assert (group / "seed0" / "sample" / "codes.npy").read_bytes() != (group / "seed3" / "sample" / "codes.npy").read_bytes()
    assert len(list((group / "cache" / "classifiers").iterdir())) == 1  # one classifier judged both seeds
    assert not (group / "seed0" / "cache").exists()


def test_the_summary_equals_the_runs_own_figures(group):
    summary = _rows(group / "summary.csv")
    assert [(r["seed"], r["class"]) for r in summary] == [
        (s, c) for s in ("0", "3", "mean", "sd") for c in CLASSES + ["mean"]
    ]
    by = {(r["seed"], r["class"]): r for r in summary}
    for seed in ("0", "3"):
        evaluate = group / f"seed{seed}" / "evaluate"
        fad = {r["class"]: float(r["fad"]) for r in _rows(evaluate / "fad.csv")}
        accuracy = {r["class"]: float(r["accuracy"]) for r in _rows(evaluate / "class_accuracy.csv") if r["set"] == "generated"}
        floors = {(r["floor"], r["class"]): float(r["fad"]) for r in _rows(evaluate / "floors.csv")}
        matrix = [[float(row[name]) for name in CLASSES] for row in _rows(evaluate / "fad_matrix.csv")]
        apart = [int(np.argmin(row) == c) for c, row in enumerate(matrix)]
        for c, name in enumerate(CLASSES + ["mean"]):
            row = by[(seed, name)]
            assert float(row["fad"]) == pytest.approx(fad[name], abs=1e-5)
            assert float(row["accuracy"]) == pytest.approx(accuracy[name], abs=1e-5)
            assert float(row["reconstruction_floor"]) == pytest.approx(floors[("reconstruction", name)], abs=1e-5)
            assert float(row["vocoder_floor"]) == pytest.approx(floors[("vocoder", name)], abs=1e-5)
            assert float(row["apart"]) == (sum(apart) if name == "mean" else apart[c])
    for name in CLASSES + ["mean"]:
        for key in ("fad", "accuracy", "apart", "reconstruction_floor"):
            values = [float(by[(s, name)][key]) for s in ("0", "3")]
            assert float(by[("mean", name)][key]) == pytest.approx(np.mean(values), abs=1e-5)
            assert float(by[("sd", name)][key]) == pytest.approx(np.std(values, ddof=1), abs=1e-5)
    text = (group / "summary.md").read_text()
    mean_fad = float(by[("mean", "mean")]["fad"])
    assert f"**{mean_fad:.1f} ± {float(by[('sd', 'mean')]['fad']):.1f}**" in text and "| 3 |" in text


def test_compare_takes_a_group_as_one_column(group, tmp_path):
    out = tmp_path / "cmp"
    assert main(["compare", str(group), str(group / "seed3"), "--labels", "guided,one seed", "--out", str(out), "-q"]) == 0
    rows = {r["class"]: r for r in _rows(out / "fad_comparison.csv")}
    summary = {(r["seed"], r["class"]): r for r in _rows(group / "summary.csv")}
    for name in CLASSES:
        assert float(rows[name]["guided"]) == pytest.approx(float(summary[("mean", name)]["fad"]), abs=1e-5)
        assert float(rows[name]["guided sd"]) == pytest.approx(float(summary[("sd", name)]["fad"]), abs=1e-5)
        assert float(rows[name]["one seed"]) == pytest.approx(float(summary[("3", name)]["fad"]), abs=1e-5)
    assert "mean ± sample standard deviation over 2 seeds" in (out / "fad_comparison.md").read_text()


def test_a_second_call_skips_every_finished_run(group, caplog):
    from conftest import TOY

    before = (group / "summary.csv").read_text()
    assert main(["run", "--seeds", "0,3", "--out", str(group), *_sets(TOY + GUIDED)]) == 0
    assert caplog.text.count("evaluate: up to date, skipped") == 2 and (group / "summary.csv").read_text() == before


def test_bad_seed_lists_are_refused(tmp_path, capsys):
    assert parse_seeds("0, 1,2") == [0, 1, 2]
    for text in ("0,0", "a,b", "-1", ""):
        with pytest.raises(RunError, match="--seeds"):
            parse_seeds(text)
    assert main(["run", "--seeds", "0,1", "--set", "seed=3", "--out", str(tmp_path / "g")]) == 2
    assert "not also with --set seed" in capsys.readouterr().err
