"""The whole pipeline at toy size through the `foley` command, in temporary folders."""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from foley.data.synth import write_synthetic_set
from foley.models.builders import load_autoencoder
from foley.stages import STAGE_NAMES
from foley.stages.commands.cli import main

CLASSES = ["dog_bark", "footstep", "gunshot", "keyboard", "moving_motor_vehicle", "rain", "sneeze_cough"]
DEV_CLASSES = ["DogBark", "Footstep", "GunShot", "Keyboard", "MovingMotorVehicle", "Rain", "Sneeze_Cough"]


def foley(*args: str) -> int:
    return main(["run", "--quiet", *args])


def _sets(overrides):
    return [item for o in overrides for item in ("--set", o)]


def _manifest(run, stage):
    return json.loads((run / stage / "manifest.json").read_text())


def test_run_writes_samples_fad_report_and_manifests(toy_run):
    for name in CLASSES:
        files = sorted((toy_run / "sample" / "samples" / name).glob("*.wav"))
        assert [f.name for f in files] == ["0001.wav", "0002.wav"]
        info = sf.info(str(files[0]))
        assert (info.samplerate, info.channels, info.frames, info.subtype) == (22050, 1, 88200, "PCM_16")
    rows = list(csv.DictReader(open(toy_run / "evaluate" / "fad.csv")))
    assert [r["class"] for r in rows] == CLASSES + ["mean"]
    assert all(np.isfinite(float(r["fad"])) for r in rows)
    assert rows[0]["embedder"] == "builtin-mfcc-v1" and rows[0]["protocol"] == "dcase2023"
    assert rows[0]["n_generated"] == "20" and rows[0]["n_reference"] == "30"  # 10 windows per clip
    assert abs(float(rows[-1]["fad"]) - np.mean([float(r["fad"]) for r in rows[:-1]])) < 1e-5
    report = (toy_run / "evaluate" / "report.md").read_text()
    assert "Generated class (rows) x reference class (columns)" in report and "builtin-mfcc-v1" in report
    matrix = list(csv.reader(open(toy_run / "evaluate" / "fad_matrix.csv")))
    assert len(matrix) == 8 and matrix[0][-1] == "embedder" and len(matrix[0]) == 9 and matrix[1][-1] == "builtin-mfcc-v1"
    assert rows[0]["reference"].startswith("clips in ") and len(rows[0]["reference_id"]) == 12
    assert rows[0]["ci_low"] == rows[0]["fad_inf"] == "" and rows[0]["clips"] == "2"


def test_class_accuracy_of_real_floor_and_generated_clips_is_written_and_reported(toy_run):
    rows = list(csv.DictReader(open(toy_run / "evaluate" / "class_accuracy.csv")))
    sets = ("real", "vocoder", "reconstruction", "generated")
    assert [(r["set"], r["class"]) for r in rows] == [(s, c) for s in sets for c in CLASSES + ["mean"]]
    clips = {"real": "3", "vocoder": "2", "reconstruction": "2", "generated": "2"}
    for row in rows:
        if row["class"] != "mean":
            assert row["clips"] == clips[row["set"]] and 0 <= int(row["correct"]) <= int(row["clips"])
            assert float(row["accuracy"]) == pytest.approx(int(row["correct"]) / int(row["clips"]))
    for s in sets:
        per_class = [float(r["accuracy"]) for r in rows if r["set"] == s and r["class"] != "mean"]
        mean = next(float(r["accuracy"]) for r in rows if r["set"] == s and r["class"] == "mean")
        assert mean == pytest.approx(np.mean(per_class), abs=1e-6)
    confusion = list(csv.DictReader(open(toy_run / "evaluate" / "class_confusion.csv")))
    generated = [r for r in confusion if r["set"] == "generated"]
    assert [r["true \\ predicted"] for r in generated] == CLASSES
    correct = {r["class"]: r["correct"] for r in rows if r["set"] == "generated"}
    assert all(r[r["true \\ predicted"]] == correct[r["true \\ predicted"]] for r in generated)
    assert all(sum(int(r[c]) for c in CLASSES) == 2 for r in generated)
    report = (toy_run / "evaluate" / "report.md").read_text()
    assert "## Class accuracy" in report and "| class | held-out real (ceiling) | vocoder floor |" in report
    assert "| generated \\ classified |" in report
    # 28 training clips, one step an epoch: evaluate.classifier_min_steps (20) sets the epochs, not classifier_epochs (10)
    assert "(foley.evaluate.classifier, 20 epochs," in report
    assert len(list((toy_run / "cache" / "classifiers").iterdir())) == 1


def test_floors_are_scored_like_the_generated_clips_and_reported(toy_run):
    floors = list(csv.DictReader(open(toy_run / "evaluate" / "floors.csv")))
    expected = [(f, c) for f in ("vocoder", "reconstruction") for c in CLASSES + ["mean"]]
    assert [(r["floor"], r["class"]) for r in floors] == expected
    generated = list(csv.DictReader(open(toy_run / "evaluate" / "fad.csv")))[0]
    for row in floors:
        assert np.isfinite(float(row["fad"])) and row["n_reference"] == ("210" if row["class"] == "mean" else "30")
        scale = ("embedder", "protocol", "reference_id")
        assert {k: row[k] for k in scale} == {k: generated[k] for k in scale}
    assert all(r["clips"] == "2" and r["n_generated"] == "20" for r in floors if r["class"] != "mean")  # capped: 2 of 3
    for floor in ("vocoder", "reconstruction"):
        files = sorted((toy_run / "evaluate" / "floors" / floor / "rain").glob("*.wav"))
        assert [f.name for f in files] == ["0001.wav", "0002.wav"] and sf.info(str(files[0])).frames == 88200
    report = (toy_run / "evaluate" / "report.md").read_text()
    assert "## Quality floors" in report
    assert "| class | vocoder floor (2 clips) | reconstruction floor (2 clips) | generated (2 clips) |" in report
    vocoder_mean = next(float(r["fad"]) for r in floors if r["floor"] == "vocoder" and r["class"] == "mean")
    assert f"**{vocoder_mean:.3f}**" in report


def test_compare_writes_the_table_and_chart_and_refuses_other_scales(toy_run, tmp_path, capsys):
    other = tmp_path / "rvq_variant"
    shutil.copytree(toy_run, other, ignore=shutil.ignore_patterns("floors", "cache", ".lock"))
    # the copy's own reference folder: another path with the same clips, so the FADs stay comparable
    reference = other / "prepare" / "synthetic" / "eval"
    overrides = ["evaluate.bootstrap=5", "evaluate.floors=false", f"evaluate.reference={reference}"]
    from conftest import TOY

    assert foley("--out", str(other), "--stages", "evaluate", *_sets(TOY + overrides)) == 0
    out = tmp_path / "table"
    assert main(["compare", str(toy_run), str(other), "--out", str(out), "-q"]) == 0
    table = (out / "fad_comparison.md").read_text()
    assert "| class | toy | rvq_variant |" in table and "builtin-mfcc-v1" in table and "protocol dcase2023" in table
    mine = {r["class"]: r for r in csv.DictReader(open(toy_run / "evaluate" / "fad.csv"))}
    theirs = {r["class"]: r for r in csv.DictReader(open(other / "evaluate" / "fad.csv"))}
    rain, their_rain = float(mine["rain"]["fad"]), float(theirs["rain"]["fad"])
    assert f"| 5 rain | {rain:.2f} | {their_rain:.2f} [{float(theirs['rain']['ci_low']):.2f}, " in table
    rows = list(csv.DictReader(open(out / "fad_comparison.csv")))
    assert [r["class"] for r in rows] == CLASSES + ["average"]
    assert rows[-1]["toy"] == mine["mean"]["fad"] and rows[-1]["rvq_variant ci_high"] == theirs["mean"]["ci_high"]
    # the same generated clips in both runs: every paired difference is 0 and its p-value 1
    assert rows[-1]["rvq_variant diff"] == "0.000000" and rows[-1]["rvq_variant p"] == "1.000000"
    assert "| Δ rvq_variant − toy | p |" in table and "+0.00 [+0.00, +0.00] | 1.000 |" in table
    assert rows[0]["toy ci_low"] == "" and theirs["rain"]["reference"] == f"clips in {other / 'prepare' / 'synthetic' / 'eval'}"
    assert (out / "fad_comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    relabelled = (other / "evaluate" / "fad.csv").read_text().replace("dcase2023", "standard")
    (other / "evaluate" / "fad.csv").write_text(relabelled)
    assert main(["compare", str(toy_run), str(other), "--out", str(tmp_path / "no"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "not comparable" in err and "protocol standard" in err
    assert "toy: embedder(s) builtin-mfcc-v1, protocol dcase2023" in err
    assert not (tmp_path / "no").exists()
    for stage in STAGE_NAMES:
        manifest = _manifest(toy_run, stage)
        assert manifest["status"] == "complete" and manifest["outputs_hash"] and manifest["versions"]["torch"]
    assert "resample_method" in _manifest(toy_run, "prepare")["details"]
    assert (toy_run / "config.yaml").is_file() and not (toy_run / "train_prior" / "checkpoint.pt").exists()


def test_several_embedders_and_both_metrics_in_one_evaluation(toy_run, tmp_path):
    from conftest import TOY
    from fake_embedders import StatsEmbedder

    from foley.registry import EMBEDDERS

    other = tmp_path / "two_embedders"
    shutil.copytree(toy_run, other, ignore=shutil.ignore_patterns("floors", "cache", ".lock"))
    overrides = ["evaluate.embedders=[builtin, stats]", "evaluate.metrics=[fad, kad]", "evaluate.floors=false",
                 "evaluate.bootstrap=4", f"evaluate.reference={other / 'prepare' / 'synthetic' / 'eval'}"]
    with EMBEDDERS.registered("stats", StatsEmbedder):
        assert foley("--out", str(other), "--stages", "evaluate", *_sets(TOY + overrides)) == 0
    rows = list(csv.DictReader(open(other / "evaluate" / "fad.csv")))
    assert [(r["embedder"], r["class"]) for r in rows] == [(e, c) for e in ("builtin-mfcc-v1", "stats")
                                                           for c in CLASSES + ["mean"]]
    assert all(r["fad"] and r["kad"] and r["kad_ci_low"] for r in rows) and {r["dim"] for r in rows} == {"64", "3"}
    report = (other / "evaluate" / "report.md").read_text()
    assert "## Embedder builtin-mfcc-v1" in report and "## Embedder stats" in report and "| class | FAD | KAD |" in report
    for name in ("builtin-mfcc-v1", "stats"):
        saved = other / "evaluate" / "embeddings" / name / "rain"
        assert np.load(saved / "generated.npy").shape[0] == 20 and np.load(saved / "reference.npy").shape[0] == 30
    matrix = list(csv.DictReader(open(other / "evaluate" / "fad_matrix.csv")))
    assert [r["embedder"] for r in matrix] == ["builtin-mfcc-v1"] * 7 + ["stats"] * 7
    details = _manifest(other, "evaluate")["details"]
    assert set(details["embedders"]) == {"builtin-mfcc-v1", "stats"} and details["embedder"] == "builtin-mfcc-v1"

    out = tmp_path / "table"
    assert main(["compare", str(other), str(other / "evaluate" / "fad.csv"), "--labels", "a,b", "--resamples", "20",
                 "--out", str(out), "-q"]) == 0
    table = (out / "fad_comparison.md").read_text()
    for title in ("## FAD, embedder builtin-mfcc-v1", "## KAD, embedder builtin-mfcc-v1", "## FAD, embedder stats",
                  "## KAD, embedder stats", "## Rank agreement between embedders and metrics"):
        assert title in table
    compared = list(csv.DictReader(open(out / "fad_comparison.csv")))
    assert len(compared) == 4 * 8 and {r["b p"] for r in compared} == {"1.000000"}  # a run against itself


def test_second_run_skips_everything_and_a_changed_section_reruns_downstream(toy_run, tmp_path, caplog):
    from conftest import TOY

    before = {stage: _manifest(toy_run, stage)["finished"] for stage in STAGE_NAMES}
    start = time.perf_counter()
    assert foley("--out", str(toy_run), *_sets(TOY)) == 0
    assert time.perf_counter() - start < 30
    assert {stage: _manifest(toy_run, stage)["finished"] for stage in STAGE_NAMES} == before

    assert foley("--out", str(toy_run), *_sets(TOY + ["sample.temperature=0.9"])) == 0
    after = {stage: _manifest(toy_run, stage)["finished"] for stage in STAGE_NAMES}
    assert [s for s in STAGE_NAMES if after[s] != before[s]] == ["sample", "evaluate"]
    assert "config changed: sample" in caplog.text


def test_generate_reproduces_the_runs_clips_and_never_overwrites(toy_run, tmp_path):
    out = tmp_path / "gen"
    assert main(["generate", str(toy_run), "--class", "gunshot", "-n", "2", "--out", str(out), "-q"]) == 0
    for name in ("0001.wav", "0002.wav"):
        assert (out / "gunshot" / name).read_bytes() == (toy_run / "sample" / "samples" / "gunshot" / name).read_bytes()
    assert main(["generate", str(toy_run), "--class", "gunshot", "-n", "1", "--out", str(out), "-q"]) == 2
    again = ["generate", str(toy_run), "--class", "GunShot", "-n", "1", "--out", str(out), "--seed", "5", "--force", "-q"]
    assert main(again) == 0
    assert (out / "gunshot" / "0001.wav").read_bytes() != (out / "gunshot" / "0002.wav").read_bytes()
    assert main(["generate", str(toy_run), "--class", "whale", "-n", "1", "-q"]) == 2


def test_guidance_on_a_prior_without_a_null_label_is_refused_with_the_fix(toy_run, tmp_path, capsys, toy_overrides):
    out = tmp_path / "guided"
    assert main(["generate", str(toy_run), "--class", "rain", "-n", "1", "--guidance", "2", "--out", str(out), "-q"]) == 2
    assert "trained with prior.label_dropout 0" in capsys.readouterr().err and not out.exists()
    by_prior = ["generate", str(toy_run), "--class", "rain", "-n", "1", "--best-of", "2", "--best-of-by", "prior"]
    assert main([*by_prior, "--out", str(out), "-q"]) == 2
    assert "best_of 2 by prior needs a prior trained with a null label" in capsys.readouterr().err and not out.exists()
    for settings in (["sample.guidance=2"], ["sample.best_of=3", "sample.best_of_by=prior"]):
        assert foley("--out", str(tmp_path / "r"), *_sets(toy_overrides + settings)) == 2
        assert "set prior.label_dropout > 0" in capsys.readouterr().err and not (tmp_path / "r" / "prepare").exists()


def test_bad_files_are_listed_and_the_run_finishes(tmp_path, toy_overrides):
    data = write_synthetic_set(tmp_path / "data", DEV_CLASSES, CLASSES, 2, 3, seed=3, progress=False)
    folder = data.dev_dir / "DogBark"
    (folder / "corrupt.wav").write_bytes(b"RIFF....WAVEfmt garbage" * 10)
    (folder / "empty.wav").write_bytes(b"")
    rng = np.random.default_rng(0)
    sf.write(str(folder / "stereo44k.wav"), rng.uniform(-0.3, 0.3, (4 * 44100, 2)), 44100, subtype="PCM_16")
    sf.write(str(folder / "one_second.wav"), rng.uniform(-0.3, 0.3, 22050), 22050, subtype="PCM_16")
    sf.write(str(folder / "six_seconds.wav"), rng.uniform(-0.3, 0.3, 6 * 22050), 22050, subtype="PCM_16")
    names = ["data.max_rejected_fraction=0.2"]
    run = tmp_path / "run"
    folders = ["--data", str(data.dev_dir), "--reference", str(data.eval_dir)]
    assert foley("--out", str(run), *folders, *_sets(toy_overrides + names)) == 0
    rejected = {os.path.basename(r["path"]): r["reason"] for r in csv.DictReader(open(run / "prepare" / "rejected.csv"))}
    kinds = {name: reason.split(":")[0] for name, reason in rejected.items()}
    assert kinds == {"corrupt.wav": "truncated", "empty.wav": "unreadable"}
    conversions = {os.path.basename(r["path"]): r["conversions"] for r in csv.DictReader(open(run / "prepare" / "index.csv"))}
    assert "mono" in conversions["stereo44k.wav"] and "44100 -> 22050" in conversions["stereo44k.wav"]
    assert conversions["one_second.wav"] == "zero-padded 22050 -> 88200 samples"
    assert conversions["six_seconds.wav"] == "cropped 132300 -> 88200 samples"
    assert (run / "evaluate" / "fad.csv").is_file()

    too_strict = ["data.max_rejected_fraction=0.05"]
    assert foley("--out", str(tmp_path / "strict"), "--data", str(data.dev_dir), *_sets(toy_overrides + too_strict)) == 2


def test_missing_upstream_and_unknown_stage_are_clear(tmp_path, capsys):
    assert foley("--out", str(tmp_path / "r"), "--stages", "train_prior") == 2
    assert "train_prior needs the outputs of extract_codes" in capsys.readouterr().err
    assert foley("--out", str(tmp_path / "r"), "--stages", "prepare,sampel") == 2
    assert "unknown stage(s) sampel" in capsys.readouterr().err


def test_killed_training_resumes_from_its_checkpoint(tmp_path, toy_overrides):
    run = tmp_path / "run"
    slow = toy_overrides + ["autoencoder.train.epochs=6", "autoencoder.train.checkpoint_every=1",
                            "data.synthetic.train_per_class=8"]
    args = [sys.executable, "-m", "foley", "run", "--quiet", "--out", str(run), "--stages", "prepare,train_vqvae", *_sets(slow)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = run / "train_vqvae" / "checkpoint.pt"
    deadline = time.time() + 120
    while not (checkpoint.exists() and (run / "train_vqvae" / "metrics.csv").exists()) and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert checkpoint.exists(), "training never wrote a checkpoint"
    assert not (run / "train_vqvae" / "vqvae.pt").exists()

    resumed = subprocess.run(args[:4] + args[5:], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "train_vqvae: resuming" in resumed.stderr and "resuming from" in resumed.stderr
    epochs = [int(r["epoch"]) for r in csv.DictReader(open(run / "train_vqvae" / "metrics.csv"))]
    assert epochs == list(range(1, 7))
    model, _ = load_autoencoder(run / "train_vqvae" / "vqvae.pt")
    assert model.levels == 2
